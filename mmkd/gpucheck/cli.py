"""``tools/gpu_check.py``: set up, test and bench mmkd on one GPU machine.

Steps (each logged to ``<out>/gpu_check.log``):

1. unless ``--skip-install``: install the wheels of ``--wheels`` into
   ``--site`` and build mmcv there (:mod:`.install`);
2. ``pytest -m gpu tests/test_gpu`` on the device (junit XML in ``<out>``);
3. ``bench/gpu_bench.py`` on the device (``<out>/bench.json``);
4. ``<out>/gpu_check.json`` and ``<out>/gpu_check.md`` (:mod:`.report`).

Only torch and the standard library are imported here; steps 2 and 3 run in
child processes that see ``--site`` and the repository on PYTHONPATH.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional

from . import ENV_FLAG, environment, install, report

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='tools/gpu_check.py',
        description='One-shot GPU check of mmkd: install, build mmcv, pytest -m gpu, benches, '
        'report (docs/gpu_check.md).')
    parser.add_argument('--out', help='folder for the JSON / markdown report (required)')
    parser.add_argument('--print-download', action='store_true',
                        help='print the pip download commands that fill --wheels, and stop')
    parser.add_argument('--wheels', default='wheels', help='folder of wheels + mmcv sdist')
    parser.add_argument('--site', default='/tmp/mmkd-gpucheck-site',
                        help='where the wheels and mmcv are installed (put on PYTHONPATH)')
    parser.add_argument('--device', choices=('auto', 'cuda', 'cpu'), default='auto')
    parser.add_argument('--skip-install', action='store_true',
                        help='use the dependencies already importable (CI, a second run)')
    parser.add_argument('--mmcv-ops', choices=('cpu', 'cuda'), default='cpu',
                        help='cpu (default): mmcv\'s CPU ops, RoIAlign / NMS through '
                        'torchvision on the GPU; cuda: mmcv\'s CUDA ops for this GPU\'s '
                        'architecture, falling back to cpu past --cuda-build-timeout')
    parser.add_argument('--cuda-build-timeout', type=float, default=300.0)
    parser.add_argument('--jobs', type=int, default=os.cpu_count() or 1,
                        help='compiler processes for the mmcv build (default: all cores)')
    parser.add_argument('--size', choices=('full', 'small'), default=None,
                        help='bench sizes (default: full on CUDA, small on the CPU)')
    parser.add_argument('--rounds', type=int, default=None, help='bench rounds')
    parser.add_argument('--tasks', nargs='+', default=['det', 'seg', 'cls'],
                        help='bench tasks (det seg cls)')
    parser.add_argument('--select', default=None, help='pytest -k expression for the tests')
    parser.add_argument('--budget', type=float, default=570.0,
                        help='seconds for the whole check; tests and benches are stopped so '
                        'that the report is written within it')
    args = parser.parse_args(argv)
    if not args.out and not args.print_download:
        parser.error('--out is required')
    return args


def set_up(args: argparse.Namespace, device: str, log: str) -> Dict[str, object]:
    """Install the wheels and build mmcv; say how RoIAlign / NMS run."""
    done = dict(install.install_wheels(args.wheels, args.site, log))
    built = install.build_mmcv(args.wheels, args.site, REPO, args.mmcv_ops, args.jobs,
                               args.cuda_build_timeout, log)
    done.update({f'mmcv_{key}': value for key, value in built.items()})
    return done


def ops_note(kind: Optional[str], device: str) -> Dict[str, str]:
    """Child environment flag and the report's line for mmcv's ops."""
    if kind is None:
        return dict(note='mmcv.ops is not importable: the det tests and benches will fail')
    if device == 'cuda' and kind == 'cpu':
        return dict(flag='1', note='mmcv has CPU ops only: RoIAlign and NMS run through '
                    'torchvision\'s CUDA kernels, deformable attention and mmdet\'s sigmoid focal '
                    'loss in plain torch '
                    '(mmkd/gpucheck/ops_route.py)')
    return dict(note=f'mmcv {kind} ops')


def run_child(cmd: List[str], env: Dict[str, str], log: str, timeout: float) -> int:
    """A step in a child process, its output in the log (and its exit status)."""
    print('+', ' '.join(cmd), flush=True)
    return install.run_logged(cmd, log, env=env, timeout=max(timeout, 30.0), cwd=REPO)


def run_tests(args, env, out: str, log: str, left: float) -> Dict[str, object]:
    junit = osp.join(out, 'junit.xml')
    cmd = [sys.executable, '-m', 'pytest', '-q', '-m', 'gpu', '-p', 'no:cacheprovider',
           f'--junitxml={junit}', 'tests/test_gpu']
    if args.select:
        cmd += ['-k', args.select]
    status = run_child(cmd, env, log, left)
    result = report.read_junit(junit)
    result['exit_status'] = status
    return result


def run_bench(args, env, device: str, out: str, log: str, left: float) -> Optional[dict]:
    path = osp.join(out, 'bench.json')
    cmd = [sys.executable, osp.join('bench', 'gpu_bench.py'), '--device', device, '--out', path,
           '--tasks', *args.tasks]
    if args.size:
        cmd += ['--size', args.size]
    if args.rounds:
        cmd += ['--rounds', str(args.rounds)]
    if run_child(cmd, env, log, left) != 0 or not osp.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.print_download:
        print('\n'.join(install.download_commands(args.wheels)))
        return 0
    start = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    log = osp.join(args.out, 'gpu_check.log')
    device = environment.pick_device(args.device)
    result: Dict[str, object] = dict(environment=environment.describe(device))
    if not args.skip_install:
        try:
            result['install'] = set_up(args, device, log)
        except (OSError, RuntimeError) as err:  # reported; the tests then show the damage
            result['install'] = dict(error=str(err))
    env = install.child_env(args.site, REPO, {'MMKD_GPU_CHECK_DEVICE': device})
    ops = ops_note(install.mmcv_ops_kind(env), device)
    result.setdefault('install', {})['mmcv_ops'] = ops['note']
    if ops.get('flag'):
        env[ENV_FLAG] = ops['flag']
    elapsed = time.perf_counter() - start
    # Tests first; the benches get what is left but at least a third.
    tests = run_tests(args, env, args.out, log, (args.budget - elapsed) * 0.55)
    elapsed = time.perf_counter() - start
    bench = run_bench(args, env, device, args.out, log, args.budget - elapsed - 5)
    floor_rows = report.floors(bench or {}, device)
    result.update(tests=tests, bench=bench or {}, floors=floor_rows,
                  verdict=report.verdict(tests, bench, floor_rows),
                  seconds=time.perf_counter() - start)
    if 'error' in result['install']:
        result['verdict'] = f'FAIL (set-up: {result["install"]["error"]})'
    if bench is None:
        result['bench_error'] = f'bench/gpu_bench.py failed or ran out of time: see {log}'
    report.write(args.out, result)
    print(f'{result["verdict"]}: {osp.join(args.out, "gpu_check.md")}', flush=True)
    return 0 if result['verdict'] == 'pass' else 1

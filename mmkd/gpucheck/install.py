"""Install mmkd's Python dependencies from a folder of wheels and build mmcv.

Runs with only torch and the standard library: it is what makes the rest
importable. The GPU machine cannot reach a package index, so everything
comes from ``--wheels`` (docs/gpu_check.md says how to fill it with
``pip download``): the wheels of :data:`WHEELS` and mmcv's sdist.

mmcv 2.1.0 has no wheel for current torch; it is built here, either with
its CUDA ops for the local GPU's architecture only (``TORCH_CUDA_ARCH_LIST``
of this one GPU, all cores) or with its CPU ops only (then the check routes
RoIAlign / NMS through torchvision: :mod:`.ops_route`). Its ``setup.py``
hard-codes ``-std=c++14/17``; torch >= 2.10's headers need C++20, so the
flag is patched before building, as tools/build_mmcv.sh does.
"""
import glob
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tarfile
import time
from typing import Dict, List, Optional

#: What the GPU image lacks of mmkd's dependency closure (Python 3.12), pinned
#: to the versions mmkd is tested with; ``(name, version, pure)``: ``pure``
#: wheels are ``py3-none-any``, the others need the platform flags.
WHEELS = (
    ('mmengine', '0.10.7', True), ('mmdet', '3.3.0', True),
    ('mmsegmentation', '1.2.2', True), ('mmpretrain', '1.2.0', True),
    ('pycocotools', '2.0.11', False), ('shapely', '2.2.0', False),
    ('terminaltables', '3.1.10', True), ('addict', '2.4.0', True), ('yapf', '0.43.0', True),
    ('platformdirs', '4.14.9', True), ('termcolor', '3.3.0', True), ('ftfy', '6.3.1', True),
    ('wcwidth', '0.9.4', False), ('prettytable', '3.18.0', True), ('mat4py', '0.6.0', True),
    ('modelindex', '0.0.2', True), ('model-index', '0.1.11', True),
    ('ordered-set', '4.1.0', True), ('importlib-metadata', '10.2.0', True),
    ('lazy-importer', '0.1.0', True),
    # setuptools < 81 still ships pkg_resources, which mmcv's setup.py imports.
    ('setuptools', '80.10.2', True),
)
MMCV_VERSION = '2.1.0'
PLATFORMS = ('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_17_x86_64',
             'manylinux2014_x86_64', 'manylinux1_x86_64')


def download_commands(dest: str = 'wheels', python: str = '3.12') -> List[str]:
    """The ``pip download`` commands that fill ``dest`` for the GPU machine
    (run them on any machine with a package index)."""
    platform = ' '.join(f'--platform {p}' for p in PLATFORMS)
    pure = ' '.join(f'{n}=={v}' for n, v, is_pure in WHEELS if is_pure)
    binary = ' '.join(f'{n}=={v}' for n, v, is_pure in WHEELS if not is_pure)
    head = 'python3 -m pip download --no-deps'
    return [f'{head} -d {dest} {pure}',
            f'{head} --only-binary=:all: --python-version {python} --implementation cp '
            f'{platform} -d {dest} {binary}',
            f'{head} --no-binary=:all: --no-build-isolation -d {dest} mmcv=={MMCV_VERSION}']


def run_logged(cmd: List[str], log: str, env: Optional[Dict[str, str]] = None,
               timeout: Optional[float] = None, cwd: Optional[str] = None) -> int:
    """Run ``cmd`` with its output appended to ``log``; its exit status (124
    when it ran past ``timeout``)."""
    with open(log, 'a') as out:
        out.write(f'$ {" ".join(cmd)}\n')
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the compilers it started go with it
            proc.wait()
            out.write(f'\n[stopped after {timeout:.0f} s]\n')
            return 124


def install_wheels(wheels: str, site: str, log: str) -> Dict[str, object]:
    """``pip install --no-index --no-deps --target site`` every wheel in ``wheels``."""
    files = sorted(glob.glob(osp.join(wheels, '*.whl')))
    if not files:
        raise FileNotFoundError(f'no wheels in {wheels!r}: see docs/gpu_check.md for the '
                                'pip download commands.')
    os.makedirs(site, exist_ok=True)
    start = time.perf_counter()
    status = run_logged([sys.executable, '-m', 'pip', 'install', '-q', '--no-index', '--no-deps',
                         '--no-compile', '--no-cache-dir', '--upgrade', '--target', site,
                         *files], log)
    if status:
        raise RuntimeError(f'pip install of the wheels failed (exit {status}); see {log}.')
    return dict(wheels=len(files), seconds=round(time.perf_counter() - start, 1))


def child_env(site: str, repo: str, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """This environment with ``site`` and the repository first on PYTHONPATH."""
    env = dict(os.environ)
    paths = [repo, site] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
    env['PYTHONPATH'] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


def mmcv_ops_kind(env: Dict[str, str]) -> Optional[str]:
    """``'cuda'`` / ``'cpu'`` for an importable ``mmcv.ops`` under ``env``, else None."""
    code = ('from mmcv.ops import get_compiling_cuda_version as version\n'
            'print("cuda" if version() not in ("", "not available") else "cpu")')
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout else None


def unpack_mmcv(wheels: str, work: str) -> str:
    """Unpack mmcv's sdist from ``wheels`` into ``work`` with the C++20 patch."""
    found = glob.glob(osp.join(wheels, f'mmcv-{MMCV_VERSION}.tar.gz'))
    if not found:
        raise FileNotFoundError(f'mmcv-{MMCV_VERSION}.tar.gz is not in {wheels!r} (see '
                                'docs/gpu_check.md).')
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    with tarfile.open(found[0]) as tar:
        try:
            tar.extractall(work, filter='data')
        except TypeError:  # a Python without extraction filters
            tar.extractall(work)
    source = osp.join(work, f'mmcv-{MMCV_VERSION}')
    setup_py = osp.join(source, 'setup.py')
    with open(setup_py) as f:
        text = f.read()
    with open(setup_py, 'w') as f:
        f.write(re.sub(r'-std=c\+\+1[47]', '-std=c++20', text))
    return source


def build_env(base: Dict[str, str], ops: str, jobs: int) -> Dict[str, str]:
    """The build's environment: all cores; CUDA for this GPU's architecture
    only, or no CUDA at all (mmcv builds CUDA ops whenever it sees a GPU)."""
    env = dict(base, MMCV_WITH_OPS='1', MAX_JOBS=str(jobs))
    if ops == 'cuda':
        import torch
        major, minor = torch.cuda.get_device_capability(0)
        env.update(FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST=f'{major}.{minor}')
    else:
        env.update(FORCE_CUDA='0', CUDA_VISIBLE_DEVICES='')
    return env


def build_mmcv(wheels: str, site: str, repo: str, ops: str, jobs: int, timeout: float,
               log: str) -> Dict[str, object]:
    """Build and install mmcv with ``ops`` (``'cuda'`` or ``'cpu'``) into
    ``site``; with ``'cuda'``, fall back to the CPU ops when the CUDA build
    fails or runs past ``timeout`` seconds."""
    env = child_env(site, repo)
    have = mmcv_ops_kind(env)
    if have == ops or (have == 'cuda' and ops == 'cpu'):
        return dict(ops=have, seconds=0.0, note='already built')
    work = osp.join(osp.dirname(osp.abspath(site)), 'mmkd-gpucheck-mmcv')
    tried, start = [], time.perf_counter()
    for kind in (['cuda', 'cpu'] if ops == 'cuda' else ['cpu']):
        source = unpack_mmcv(wheels, work)
        began = time.perf_counter()
        status = run_logged([sys.executable, '-m', 'pip', 'install', '-q', '--no-index',
                             '--no-deps', '--no-build-isolation', '--no-cache-dir', '--upgrade',
                             '--target', site, source], log, env=build_env(env, kind, jobs),
                            timeout=timeout if kind == 'cuda' else None)
        tried.append(dict(ops=kind, status=status, seconds=round(time.perf_counter() - began)))
        if status == 0 and mmcv_ops_kind(env) == kind:
            return dict(ops=kind, seconds=round(time.perf_counter() - start, 1), tried=tried)
    raise RuntimeError(f'mmcv {MMCV_VERSION} could not be built ({tried}); see {log}.')

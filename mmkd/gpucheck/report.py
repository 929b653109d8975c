"""The check's report: ``gpu_check.json`` and ``gpu_check.md`` in ``--out``."""
import json
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional

#: The floors of issue 18, checked on a GPU (docs/benchmarks.md).
GLUE_FLOOR = 1.10  # (c - a) / b with the fp32 teacher
BF16_ADDED_FLOOR = 0.6  # bf16 teacher's (c - a) over the fp32 teacher's


def read_junit(path: str) -> Dict[str, object]:
    """Counts and the failed / skipped / xfailed tests of a pytest junit XML."""
    if not osp.exists(path):
        return dict(error=f'no junit report at {path} (pytest did not run to the end)')
    root = ET.parse(path).getroot()
    cases: List[dict] = []
    for case in root.iter('testcase'):
        name = f'{case.get("classname", "")}::{case.get("name", "")}'
        row = dict(name=name, seconds=float(case.get('time', 0)), outcome='passed')
        for tag in ('failure', 'error', 'skipped'):
            node = case.find(tag)
            if node is not None:
                row['outcome'] = 'xfailed' if node.get('type') == 'pytest.xfail' else {
                    'failure': 'failed', 'error': 'error', 'skipped': 'skipped'}[tag]
                row['message'] = (node.get('message') or '').strip()[:500]
        cases.append(row)
    counts: Dict[str, int] = {}
    for row in cases:
        counts[row['outcome']] = counts.get(row['outcome'], 0) + 1
    return dict(counts=counts, total=len(cases),
                not_passed=[row for row in cases if row['outcome'] != 'passed'])


def floors(bench: dict, device: str) -> List[dict]:
    """Issue 18's GPU floors per task (only judged on CUDA)."""
    rows = []
    for task, result in sorted(bench.get('glue', {}).items()):
        fp32 = result.get('fp32', {})
        if 'glue' in fp32:
            rows.append(dict(task=task, what='(c - a) / b, fp32 teacher', value=fp32['glue'],
                             floor=f'<= {GLUE_FLOOR}',
                             ok=fp32['glue'] <= GLUE_FLOOR if device == 'cuda' else None))
        ratio = result.get('bf16_added_vs_fp32')
        if ratio is not None:
            rows.append(dict(task=task, what='(c - a) bf16 / (c - a) fp32', value=ratio,
                             floor=f'<= {BF16_ADDED_FLOOR}',
                             ok=ratio <= BF16_ADDED_FLOOR if device == 'cuda' else None))
    return rows


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'NO'
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


def _glue_md(bench: dict) -> List[str]:
    lines = ['| task | teacher | (a) student ms | (b) teacher ms | (c) distilled ms | '
             '(c - a) / b | peak (a) MiB | peak (c) MiB |', '|---|---|---|---|---|---|---|---|']
    for task, result in sorted(bench.get('glue', {}).items()):
        for precision in ('fp32', 'bf16'):
            row = result.get(precision, {})
            if 'error' in row:
                lines.append(f'| {task} | {precision} | error: {row["error"]} | | | | | |')
                continue
            lines.append(f'| {task} | {precision} | {_fmt(row.get("a_ms"), 1)} | '
                         f'{_fmt(row.get("b_ms"), 1)} | {_fmt(row.get("c_ms"), 1)} | '
                         f'{_fmt(row.get("glue"))} | {_fmt(row.get("peak_a_mib"), 0)} | '
                         f'{_fmt(row.get("peak_c_mib"), 0)} |')
    lines.append('')
    lines += [f'- {task}: {result.get("model")}; bf16 teacher\'s added cost (c - a) / fp32\'s: '
              f'{_fmt(result.get("bf16_added_vs_fp32"))}'
              for task, result in sorted(bench.get('glue', {}).items())]
    return lines


def _losses_md(bench: dict) -> List[str]:
    lines = ['| loss, size | shape | values agree | mmkd ms | paper ms | time x | mmkd MiB | '
             'paper MiB | memory x |', '|---|---|---|---|---|---|---|---|---|']
    for name, row in bench.get('losses', {}).items():
        if 'error' in row:
            lines.append(f'| {name} | {tuple(row.get("shape", ()))} | error: {row["error"]} '
                         '| | | | | | |')
            continue
        mem = (row['mmkd_mib'] / row['paper_mib']
               if row.get('mmkd_mib') is not None and row.get('paper_mib') else None)
        lines.append(f'| {name} | {tuple(row["shape"])} | {_fmt(row["agree"])} | '
                     f'{_fmt(row["mmkd_ms"], 1)} | {_fmt(row["paper_ms"], 1)} | '
                     f'{_fmt(row["time_ratio"])} | {_fmt(row["mmkd_mib"], 0)} | '
                     f'{_fmt(row["paper_mib"], 0)} | {_fmt(mem)} |')
    return lines


def _tests_md(tests: dict) -> List[str]:
    if 'error' in tests:
        return [f'**{tests["error"]}**']
    counts = ', '.join(f'{n} {k}' for k, n in sorted(tests['counts'].items()))
    lines = [f'{tests["total"]} tests: {counts}.', '']
    for row in tests['not_passed']:
        lines.append(f'- {row["outcome"]}: `{row["name"]}`: {row.get("message", "")}')
    return lines


def markdown(report: dict) -> str:
    """The human-readable report."""
    env, build = report['environment'], report.get('install', {})
    lines = ['# mmkd GPU check', '',
             f'Verdict: **{report["verdict"]}** ({report["seconds"]:.0f} s in all).', '',
             '## Machine', '']
    lines += [f'- {key}: {value}' for key, value in env.items()]
    lines += ['', '## Set-up', '']
    lines += [f'- {key}: {value}' for key, value in build.items()] or ['- skipped (--skip-install)']
    lines += ['', '## `pytest -m gpu`', ''] + _tests_md(report['tests'])
    bench = report.get('bench', {})
    lines += ['', f'## Glue per task ({bench.get("size", "?")} size, median of '
              f'{bench.get("rounds", "?")} interleaved rounds)', ''] + _glue_md(bench)
    lines += ['', '## Loss kernels against the paper formulation (forward + backward)', '']
    lines += _losses_md(bench)
    lines += ['', '## Floors (issue 18; judged on CUDA only)', '',
              '| task | what | value | floor | met |', '|---|---|---|---|---|']
    lines += [f'| {r["task"]} | {r["what"]} | {_fmt(r["value"])} | {r["floor"]} | '
              f'{_fmt(r["ok"]) if r["ok"] is not None else "not judged (CPU)"} |'
              for r in report.get('floors', [])]
    if report.get('bench_error'):
        lines += ['', f'**Benches failed:** {report["bench_error"]}']
    return '\n'.join(lines) + '\n'


def verdict(tests: dict, bench: Optional[dict], floor_rows: List[dict]) -> str:
    """``'pass'`` when every test passed (or was skipped / xfailed as
    declared), no bench errored and every judged floor is met."""
    bad = []
    if 'error' in tests or tests['counts'].get('failed') or tests['counts'].get('error'):
        bad.append('tests')
    if bench is None or any('error' in row for row in bench.get('losses', {}).values()) or any(
            'error' in r.get(p, {}) for r in bench.get('glue', {}).values()
            for p in ('fp32', 'bf16')):
        bad.append('benches')
    if any(row['ok'] is False for row in floor_rows):
        bad.append('floors')
    return 'pass' if not bad else 'FAIL (' + ', '.join(bad) + ')'


def write(out: str, report: dict) -> None:
    with open(osp.join(out, 'gpu_check.json'), 'w') as f:
        json.dump(report, f, indent=1)
    with open(osp.join(out, 'gpu_check.md'), 'w') as f:
        f.write(markdown(report))

"""Official implementations, run from a fetched copy of their repository.

Fidelity tests compare mmkd with code no one here wrote. That code is never
vendored into mmkd or the tests: it is read from a copy of the authors'
repository fetched on this machine, and a test that needs an absent copy is
skipped with a message saying where it looked.

A copy is found under ``$MMKD_OFFICIAL_DIR`` (default ``/work/.mirror``) as
``<owner>+<name>/repo``: either a checkout (files in its work tree) or a bare
git directory (files read with ``git show HEAD:<path>``), or at
``$MMKD_OFFICIAL_DIR/<name>`` as a plain checkout.
"""
import os
import os.path as osp
import subprocess
import types
from typing import Optional

import pytest

OFFICIAL_DIR = os.environ.get('MMKD_OFFICIAL_DIR', '/work/.mirror')


def _candidates(repo: str):
    owner, name = repo.split('/')
    return [osp.join(OFFICIAL_DIR, f'{owner}+{name}', 'repo'), osp.join(OFFICIAL_DIR, name)]


def official_source(repo: str, path: str) -> Optional[str]:
    """The text of ``path`` in the fetched copy of GitHub ``repo``
    (``owner/name``), or None when no copy holds it."""
    for root in _candidates(repo):
        if osp.isfile(osp.join(root, path)):
            with open(osp.join(root, path)) as f:
                return f.read()
        if osp.isdir(root):
            git_dir = osp.join(root, '.git') if osp.isdir(osp.join(root, '.git')) else root
            proc = subprocess.run(['git', '--git-dir', git_dir, 'show', f'HEAD:{path}'],
                                  capture_output=True, text=True)
            if proc.returncode == 0:
                return proc.stdout
    return None


def official_module(repo: str, path: str) -> types.ModuleType:
    """Execute the fetched ``path`` of ``repo`` as a module of its own (its
    imports must be installed here), or skip the calling test."""
    source = official_source(repo, path)
    if source is None:
        pytest.skip(f'official code absent: no fetched copy of github.com/{repo} holding {path} '
                    f'under {OFFICIAL_DIR} (set MMKD_OFFICIAL_DIR to a directory with '
                    f'{repo.replace("/", "+")}/repo or {repo.split("/")[1]}/ in it)')
    module = types.ModuleType(f'official_{repo.replace("/", "_").replace("-", "_")}')
    module.__file__ = f'{repo}:{path}'
    exec(compile(source, module.__file__, 'exec'), module.__dict__)
    return module


def mdistiller_dot() -> type:
    """mdistiller's ``DistillationOrientedTrainer`` (``mdistiller/engine/dot.py``)."""
    return official_module('megvii-research/mdistiller',
                           'mdistiller/engine/dot.py').DistillationOrientedTrainer

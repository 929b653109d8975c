"""``mim`` end to end on the CPU, as a user of an installed mmkd runs it.

mmkd is built into a wheel (``pip wheel``, no network: the venv's setuptools)
and unpacked into a throwaway site folder that comes first on
``PYTHONPATH``, so ``mim`` finds that installed copy: its
``mmkd/.mim/{configs,tools,model-index.yml}`` are real files copied at build
time, as a normal ``pip install`` leaves them. Then ``mim search mmkd`` lists
the model index, ``mim train mmkd <config name>`` finds the demo config inside
the package and trains it a few iterations, and ``mim test mmkd`` evaluates
the checkpoint. (An editable install is not what mim reads: it looks for
``<dist location>/mmkd``, which a PEP 660 editable install does not create.)
"""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmkd.demo.shapes_cls import generate_shapes_cls
from mmkd.models import build_model

pytest.importorskip('mim', reason='openmim is the optional extra mmkd[mim]')

REPO = Path(__file__).resolve().parents[2]
CONFIG = 'kd_resnet18w16_w8_shapes_cls.py'  # found by name inside the package
PACKAGED = ('pyproject.toml', 'README.md', 'model-index.yml', 'mmkd', 'configs', 'tools')


@pytest.fixture(scope='module')
def site(tmp_path_factory) -> Path:
    """An installed (not editable) mmkd: the wheel's contents in a folder."""
    root = tmp_path_factory.mktemp('mim')
    src = root / 'src'
    src.mkdir()
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
    for name in PACKAGED:
        path = REPO / name
        if path.is_dir():
            # symlinks=True keeps mmkd/.mim's relative links pointing into
            # the copy: the wheel build must follow them as pip's does.
            shutil.copytree(path, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    wheels = root / 'wheels'
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
                    '--no-build-isolation', '-w', str(wheels), str(src)],
                   check=True, capture_output=True, cwd=root)
    site_dir = root / 'site'
    with zipfile.ZipFile(next(wheels.glob('mmkd-*.whl'))) as wheel:
        wheel.extractall(site_dir)
    return site_dir


def mim(site: Path, *args: str, cwd: Path) -> str:
    """Run ``mim`` with the installed copy first on the path; its output."""
    env = dict(os.environ, PYTHONPATH=str(site), CUDA_VISIBLE_DEVICES='')
    done = subprocess.run([sys.executable, '-m', 'mim', *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    return out


def test_package_ships_mim_files(site):
    mim_dir = site / 'mmkd' / '.mim'
    for rel in ('model-index.yml', 'tools/train.py', 'tools/test.py', 'tools/dist_train.sh',
                f'configs/demo_cls/{CONFIG}', 'configs/dkd/metafile.yml',
                'configs/_base_/faster_rcnn_distill_coco.py'):
        path = mim_dir / rel
        assert path.is_file() and not path.is_symlink(), rel
    assert (mim_dir / 'tools/train.py').read_bytes() == (REPO / 'tools/train.py').read_bytes()


def test_mim_search_train_test(site, tmp_path):
    out = mim(site, 'search', 'mmkd', cwd=tmp_path)
    assert 'dkd_faster_rcnn_r101_r18_coco' in out

    data = tmp_path / 'data'
    generate_shapes_cls(data, num_train_per_class=2, num_val_per_class=1, seed=0,
                        difficulty='easy')
    cfg = Config.fromfile(str(REPO / 'configs' / 'demo_cls' / CONFIG))
    teacher_ckpt = tmp_path / 'teacher.pth'
    teacher = build_model(cfg.model.teacher, 'mmpretrain')
    torch.save({'state_dict': teacher.state_dict()}, teacher_ckpt)

    work = tmp_path / 'work'
    options = [f'train_dataloader.dataset.data_root={data}',
               f'val_dataloader.dataset.data_root={data}',
               f'test_dataloader.dataset.data_root={data}',
               'train_dataloader.batch_size=8', 'val_dataloader.batch_size=12',
               'test_dataloader.batch_size=12']
    out = mim(site, 'train', 'mmkd', CONFIG, '--gpus', '0', '--work-dir', str(work),
              '--cfg-options', f'model.teacher_ckpt={teacher_ckpt}',
              'model.student.backbone.init_cfg=None',  # no demo pretraining here
              'train_cfg.max_iters=2',
              'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
              'param_scheduler.T_max=2', *options, cwd=tmp_path)
    # mim ran the packaged train.py on the packaged config
    assert str(site / 'mmkd' / '.mim' / 'tools' / 'train.py') in out
    assert str(site / 'mmkd' / '.mim' / 'configs' / 'demo_cls' / CONFIG) in out
    assert 'loss_kd' in out
    ckpt = work / 'iter_2.pth'
    assert ckpt.is_file()

    out = mim(site, 'test', 'mmkd', CONFIG, '--gpus', '0', '--checkpoint', str(ckpt),
              '--work-dir', str(tmp_path / 'test'), '--cfg-options', *options, cwd=tmp_path)
    assert 'accuracy/top1' in out

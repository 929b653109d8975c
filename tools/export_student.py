"""Write a distiller checkpoint's student as a plain mmdet/mmseg/mmpretrain model.

    python tools/export_student.py CONFIG DISTILLER_CKPT OUT.pth

OUT.pth holds only the student's weights (no teacher, no ABF connectors, no
optimizer state); OUT.py beside it is the student's config (the distiller
config with ``model`` replaced by its ``student`` and mmkd dropped from
``custom_imports``), so the host library's own test script can load both:

    python -m mmdet.../tools/test.py OUT.py OUT.pth
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

import mmkd  # noqa: E402,F401  (mmkd's loader reads mmengine checkpoints under torch>=2.6)
from mmkd.hosts.mmengine import read_checkpoint  # noqa: E402
from mmkd.models.base_distiller import student_state_dict  # noqa: E402

def distiller_student(checkpoint: dict) -> dict:
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not any(k.startswith('student.') for k in state_dict):
        raise RuntimeError('the checkpoint has no "student." weights: is it a distiller '
                           'checkpoint written by mmkd?')
    return student_state_dict(state_dict)


def student_config(cfg: Config) -> Config:
    if 'student' not in cfg.model:
        raise RuntimeError('the config\'s model has no "student": give the distiller config '
                           'the checkpoint was trained with.')
    cfg.model = cfg.model.student
    # a student built from mmkd's parts (e.g. mmkd.MobileNetV1) still needs mmkd
    uses_mmkd = "'mmkd." in repr(getattr(cfg.model, 'to_dict', lambda: cfg.model)())
    imports = cfg.get('custom_imports', None)
    if imports is not None:
        kept = [m for m in imports.get('imports', []) if uses_mmkd or (
            m != 'mmkd' and not m.startswith('mmkd.'))]
        if kept:
            cfg.custom_imports = dict(imports, imports=kept)
        else:
            cfg.pop('custom_imports')
    hooks = [h for h in cfg.get('custom_hooks', []) if not str(h.get('type', '')).startswith('mmkd.')]
    cfg.custom_hooks = hooks
    return cfg


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the distiller config')
    parser.add_argument('checkpoint', help='a distiller checkpoint (path or URL)')
    parser.add_argument('out', help='output .pth of the student')
    args = parser.parse_args()

    checkpoint = read_checkpoint(args.checkpoint)
    state_dict = distiller_student(checkpoint)
    meta = dict(checkpoint.get('meta', {}))
    meta = {k: v for k, v in meta.items() if k in ('epoch', 'iter', 'dataset_meta', 'seed',
                                                    'experiment_name', 'mmengine_version')}
    meta['exported_from'] = osp.abspath(args.checkpoint) if osp.exists(args.checkpoint) else args.checkpoint
    torch.save({'meta': meta, 'state_dict': state_dict}, args.out)
    cfg_out = osp.splitext(args.out)[0] + '.py'
    student_config(Config.fromfile(args.config)).dump(cfg_out)
    print(f'student: {len(state_dict)} tensors -> {args.out}\nconfig: {cfg_out}')


if __name__ == '__main__':
    main()

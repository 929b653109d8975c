"""Teacher-minus-student logit correlation heatmap (DKD paper, figure 4).

    python tools/analyze_logits.py CONFIG STUDENT_CKPT [--teacher-ckpt T] \
        [--out corr_diff.png] [--split val] [--max-boxes 20000]

CONFIG is the distiller config (it names the student, the teacher, its
checkpoint and the dataset). STUDENT_CKPT is a distiller checkpoint or an
exported student. Both models score the split's ground-truth boxes; the script
prints the mean absolute difference of the class correlation matrices and
writes the heatmap.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mmkd  # noqa: E402,F401
from mmkd.hosts.mmengine import read_checkpoint  # noqa: E402
from mmkd.analysis import correlation_difference, gt_roi_logits, plot_difference  # noqa: E402
from mmkd.models.base_distiller import load_teacher_checkpoint, student_state_dict  # noqa: E402,E501
from mmkd.models.detection_distiller import build_detector  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('student_ckpt')
    parser.add_argument('--teacher-ckpt', help='defaults to the config\'s model.teacher_ckpt')
    parser.add_argument('--out', default='corr_diff.png')
    parser.add_argument('--split', default='val', choices=['train', 'val', 'test'])
    parser.add_argument('--max-boxes', type=int, default=20000)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='where both models run (default: cuda when available)')
    args = parser.parse_args()

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if 'student' not in cfg.model or 'teacher' not in cfg.model:
        raise SystemExit('CONFIG must be a distiller config (model.student and model.teacher).')
    DefaultScope.get_instance('analyze_logits', scope_name=cfg.get('default_scope', 'mmdet'))
    student = build_detector(cfg.model.student)
    teacher = build_detector(cfg.model.teacher)
    state = read_checkpoint(args.student_ckpt)
    student.load_state_dict(student_state_dict(state.get('state_dict', state)), strict=True)
    teacher_ckpt = args.teacher_ckpt or cfg.model.get('teacher_ckpt')
    if not teacher_ckpt:
        raise SystemExit('no teacher checkpoint: pass --teacher-ckpt')
    load_teacher_checkpoint(teacher, teacher_ckpt)
    student.to(args.device)  # its data_preprocessor moves each batch there too
    teacher.to(args.device)

    loader = Runner.build_dataloader(cfg[f'{args.split}_dataloader'])
    t_logits, s_logits = gt_roi_logits(teacher, student, loader, student.data_preprocessor,
                                       args.max_boxes)
    diff = correlation_difference(t_logits, s_logits)
    names = list(loader.dataset.metainfo.get('classes', [])) + ['background']
    mad = float(np.abs(diff).mean())
    plot_difference(diff, names, args.out,
                    f'corr(teacher) - corr(student)\nmean |diff| = {mad:.4f}')
    agreement = float((t_logits.argmax(1) == s_logits.argmax(1)).mean())
    print(f'boxes: {len(t_logits)}  classes: {diff.shape[0]}  top-1 agreement: {agreement:.3f}')
    print(f'mean |corr_teacher - corr_student| = {mad:.4f}  -> {args.out}')


if __name__ == '__main__':
    main()

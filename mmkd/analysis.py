"""Teacher-student logit analysis (the DKD paper's correlation-difference figure).

Both detectors score the same boxes (the dataset's ground-truth boxes used as
RoIs), giving (N, C+1) RoI logits each. The class-by-class Pearson correlation
matrix of each model's logits over all boxes is computed; their difference
``corr_teacher - corr_student`` shows which class relations the student has
not learned, and its mean absolute value summarises it (0 = same structure).
"""
from typing import Dict, Iterable, Tuple

import numpy as np
import torch
from mmdet.structures.bbox import bbox2roi
from torch import nn

from mmkd.hosts.mmdet import roi_cls_logits


@torch.no_grad()
def gt_roi_logits(teacher: nn.Module, student: nn.Module, batches: Iterable[dict],
                  data_preprocessor: nn.Module, max_boxes: int = 20000) -> Tuple[np.ndarray, np.ndarray]:
    """RoI classification logits of both detectors on ground-truth boxes."""
    teacher.eval()
    student.eval()
    t_rows, s_rows, count = [], [], 0
    for batch in batches:
        data = data_preprocessor(batch, False)
        boxes = [s.gt_instances.bboxes for s in data['data_samples']]
        boxes = [b.tensor if hasattr(b, 'tensor') else b for b in boxes]
        if sum(len(b) for b in boxes) == 0:
            continue
        rois = bbox2roi(boxes)
        for model, rows in ((teacher, t_rows), (student, s_rows)):
            feats = model.extract_feat(data['inputs'])
            rows.append(roi_cls_logits(model.roi_head, feats, rois).float().cpu())
        count += len(rois)
        if count >= max_boxes:
            break
    if not t_rows:
        raise ValueError('the dataset yielded no ground-truth boxes')
    return torch.cat(t_rows).numpy(), torch.cat(s_rows).numpy()


def correlation_difference(teacher_logits: np.ndarray, student_logits: np.ndarray) -> np.ndarray:
    """``corrcoef(teacher) - corrcoef(student)`` over classes (columns), (C, C).

    A class whose logit never varies has no defined correlation; it counts as
    uncorrelated (0) with every other class instead of NaN.
    """
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f'logit shapes differ: {teacher_logits.shape} vs {student_logits.shape}')
    if teacher_logits.shape[0] < 2:
        raise ValueError('need at least two boxes to correlate')

    def corr(x):
        with np.errstate(invalid='ignore', divide='ignore'):
            c = np.corrcoef(x.astype(np.float64), rowvar=False)
        return np.nan_to_num(c, nan=0.0)

    return corr(teacher_logits) - corr(student_logits)


def plot_difference(diff: np.ndarray, class_names, path: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    size = max(4.0, 0.35 * len(diff) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    bound = max(float(np.abs(diff).max()), 1e-6)
    im = ax.imshow(diff, cmap='RdBu_r', vmin=-bound, vmax=bound)
    ticks = range(len(diff))
    labels = list(class_names)[:len(diff)]
    ax.set_xticks(ticks, labels, rotation=90)
    ax.set_yticks(ticks, labels)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_differences(diffs: Dict[str, np.ndarray], class_names, path: str) -> None:
    """Several ``corr(teacher) - corr(student)`` matrices side by side on one
    colour scale, each titled with its mean absolute value."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n = len(diffs)
    if n == 0:
        raise ValueError('no correlation differences to plot')
    size = max(3.5, 0.35 * len(next(iter(diffs.values()))) + 1.5)
    fig, axes = plt.subplots(1, n, figsize=(size * n + 1, size), squeeze=False)
    bound = max(max(float(np.abs(d).max()) for d in diffs.values()), 1e-6)
    for ax, (title, diff) in zip(axes[0], diffs.items()):
        im = ax.imshow(diff, cmap='RdBu_r', vmin=-bound, vmax=bound)
        ticks = range(len(diff))
        labels = list(class_names)[:len(diff)]
        ax.set_xticks(ticks, labels, rotation=90)
        ax.set_yticks(ticks, labels)
        ax.set_title(f'{title}\nmean |diff| = {np.abs(diff).mean():.3f}', fontsize=9)
    fig.colorbar(im, ax=list(axes[0]), fraction=0.046 / n)
    fig.suptitle('corr(teacher) - corr(student) of RoI logits on val boxes', fontsize=10)
    fig.savefig(path, dpi=120, bbox_inches='tight')
    plt.close(fig)

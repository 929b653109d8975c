"""The demo's tasks: for each of detection, segmentation and classification,
its configs, its metric, how to make its data and how to analyse a student.

Config paths are relative to :data:`REPO`, the checkout that holds
``configs/`` (the demo runs from a checkout, with mmkd installed editable).
"""
import copy
import glob
import json
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional

import numpy as np
from mmengine.config import Config
from torch import nn

from mmkd.analysis import correlation_difference, gt_roi_logits
from .crops import generate_scene_crops
from .shapes import generate_shapes
from .shapes_cls import generate_shapes_cls

#: The checkout the demo configs live in.
REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
#: Run names that are not methods: the undistilled student and the teacher.
BASELINE = 'baseline'
TEACHER = 'teacher'
#: Job id of the teacher's run (``<name>/<seed>``; the teacher has seed 0).
TEACHER_ID = 'teacher/0'
#: The host library that builds each task's models.
SCOPES = {'det': 'mmdet', 'seg': 'mmseg', 'cls': 'mmpretrain'}
#: Where the pretrained backbones' configs live (relative to :data:`REPO`).
PRETRAIN_DIR = 'configs/demo_pretrain'


@dataclass
class TaskSpec:
    """What the demo needs to know about one task.

    The configs own the schedules (``train_cfg.max_iters``): the teacher's
    config the teacher's, the baseline student's config every student's.

    Attributes:
        name: ``--task`` value.
        title: one line for the chart and the report.
        config_dir: where the configs live (relative to :data:`REPO`).
        teacher: teacher config file name.
        students: method -> student config file name; ``'baseline'`` is the
            undistilled student.
        default_methods: the methods a plain ``make demo`` runs.
        metric: key of the headline metric in the evaluator's results.
        metric_name: the headline metric's name in the table and the chart.
        extra_metrics: column name -> evaluator key, shown beside it.
        scale: factor that turns the metric into percent (COCO gives 0-1).
        make_data: ``(data_dir, num_train, num_val) -> cfg options`` that
            generate the data and point the configs at it (``None`` counts
            take the task's defaults).
        analyze: ``(teacher, student, val_dataloader) -> dict`` logit
            analysis of a trained student, or ``None``.
        pretrain: ``'teacher'`` / ``'student'`` -> the config (file name in
            :data:`PRETRAIN_DIR`) that pretrains that model's backbone as an
            image classifier; the teacher's and students' configs load its
            checkpoint (``init_cfg=dict(type='Pretrained', ...)``).
        make_pretrain_data: ``(data_dir, num_train, num_val) -> cfg options``
            that generate the pretraining set and point the pretraining
            configs at it (``data_dir`` is the task's own data dir).
        full: ``--full``'s schedules (``teacher_iters``, ``student_iters``):
            longer runs that meet what the default's 15 minutes cannot.
    """
    name: str
    title: str
    config_dir: str
    teacher: str
    students: Dict[str, str]
    default_methods: List[str]
    metric: str
    metric_name: str
    extra_metrics: Dict[str, str] = field(default_factory=dict)
    scale: float = 1.0
    make_data: Optional[Callable] = None
    analyze: Optional[Callable] = None
    pretrain: Dict[str, str] = field(default_factory=dict)
    make_pretrain_data: Optional[Callable] = None
    full: Dict[str, int] = field(default_factory=dict)

    def config(self, name: str) -> str:
        """The config of run ``name`` (``'teacher'``, ``'baseline'`` or a method)."""
        return osp.join(self.config_dir, self.teacher if name == TEACHER else self.students[name])

    def pretrain_config(self, role: str) -> str:
        """The config that pretrains the backbone of ``role`` (``'teacher'``
        or ``'student'``)."""
        return osp.join(PRETRAIN_DIR, self.pretrain[role])

    def missing(self) -> List[str]:
        """The task's config files that do not exist."""
        configs = [self.config(n) for n in [TEACHER, *self.students]]
        configs += [self.pretrain_config(role) for role in self.pretrain]
        return [c for c in configs if not osp.isfile(osp.join(REPO, c))]


_CONFIGS: Dict[str, Config] = {}


def load_config(config: str) -> Config:
    """A config (path relative to :data:`REPO`) read once per process; a
    copy, so callers may change it."""
    if config not in _CONFIGS:
        _CONFIGS[config] = Config.fromfile(osp.join(REPO, config))
    return copy.deepcopy(_CONFIGS[config])


def _data_root_options(data_dir: str) -> Dict[str, object]:
    root = osp.abspath(data_dir) + '/'
    return {f'{split}_dataloader.dataset.data_root': root for split in ('train', 'val', 'test')}


def _scenes(data_dir: str, num_train: Optional[int], num_val: Optional[int],
            default_val: int = 120) -> dict:
    """The shapes scenes (``easy`` preset, 128 px, generator seed 0; 500
    train and ``default_val`` val scenes unless given) and the ``_data``
    fingerprint of what was generated."""
    info = generate_shapes(data_dir, num_train=num_train or 500,
                           num_val=num_val or default_val, image_size=128, difficulty='easy')
    with open(info['meta_file']) as f:
        meta = json.load(f)
    return dict(version=meta['version'], seed=meta['seed'], params=meta['params'])


def detection_data(data_dir: str, num_train: Optional[int] = None,
                   num_val: Optional[int] = None) -> Dict[str, object]:
    """Generate the detection scenes; cfg options pointing at them."""
    options = {'_data': _scenes(data_dir, num_train, num_val), **_data_root_options(data_dir)}
    ann = osp.abspath(data_dir) + '/annotations/instances_val.json'
    options.update({'val_evaluator.ann_file': ann, 'test_evaluator.ann_file': ann})
    return options


def segmentation_data(data_dir: str, num_train: Optional[int] = None,
                      num_val: Optional[int] = None) -> Dict[str, object]:
    """The shapes scenes' semantic maps for mmseg, in a dir of their own
    (``data/demo_seg``): the detection demo's 500 train scenes (the same
    generator and seed, so the same images) and 1000 val scenes unless given,
    of which the first 120 are the detection demo's. On 120 val scenes the
    val set's own sampling moved a trained student's mIoU by up to 2.1
    points (docs/results.md), more than the seed SD the demo is meant to
    resolve; cfg options."""
    return {'_data': _scenes(data_dir, num_train, num_val, default_val=1000),
            **_data_root_options(data_dir)}


def classification_data(data_dir: str, num_train: Optional[int] = None,
                        num_val: Optional[int] = None) -> Dict[str, object]:
    """The single-object shapes classification set (``easy`` preset, 400 /
    150 images per class unless given: with 50, i.e. 600 val images, the
    binomial noise of an 87 % top-1 alone is 1.4 points); cfg options."""
    meta = generate_shapes_cls(data_dir, num_train_per_class=num_train or 400,
                               num_val_per_class=num_val or 150, difficulty='easy')
    return {'_data': meta, **_data_root_options(data_dir)}


def _pretrain_options(root: str) -> Dict[str, object]:
    return {'data_root': osp.abspath(root) + '/', **_data_root_options(root)}


def shapes_pretrain_data(data_dir: str, num_train: Optional[int] = None,
                         num_val: Optional[int] = None) -> Dict[str, object]:
    """The detection and segmentation demos' pretraining set, beside their
    scenes (``data/demo_pretrain``): the twelve single-object shapes classes
    at 64 px, generator seed 1 (not the classification demo's images), 400
    / 50 per class unless given; cfg options for the pretraining configs."""
    root = osp.join(osp.dirname(osp.abspath(data_dir)), 'demo_pretrain')
    meta = generate_shapes_cls(root, num_train_per_class=num_train or 400,
                               num_val_per_class=num_val or 50, image_size=64, seed=1,
                               difficulty='easy')
    return {'_data': meta, **_pretrain_options(root)}


def crops_pretrain_data(data_dir: str, num_train: Optional[int] = None,
                        num_val: Optional[int] = None) -> Dict[str, object]:
    """The classification demo's pretraining set, beside its data
    (``data/demo_crops``): the objects of the detection scenes (the
    detection demo's ``data/demo_easy``, 500 / 120 scenes; other sizes, as
    ``--num-train`` / ``--num-val`` give them, in a folder of their own so
    that the detection demo's scenes stay as they are), cropped at 32 px;
    cfg options for the pretraining configs."""
    parent = osp.dirname(osp.abspath(data_dir))
    sized = num_train is not None or num_val is not None
    suffix = f'_{num_train}_{num_val}' if sized else ''
    scenes = osp.join(parent, 'demo_easy' + suffix)
    _scenes(scenes, num_train, num_val)
    root = osp.join(parent, 'demo_crops' + suffix)
    meta = generate_scene_crops(scenes, root, size=32)
    return {'_data': meta, **_pretrain_options(root)}


def detection_analysis(teacher: nn.Module, student: nn.Module, dataloader: Iterable) -> dict:
    """RoI-logit correlation gap and top-1 agreement on the val boxes.

    Args:
        teacher: the trained teacher detector.
        student: the trained student detector.
        dataloader: the val batches (their ground-truth boxes are the RoIs).

    Returns:
        ``corr_gap`` (mean absolute correlation difference), ``agreement``
        (top-1 agreement of the RoI logits) and ``corr_diff`` (the matrix).
    """
    t_logits, s_logits = gt_roi_logits(teacher, student, dataloader, student.data_preprocessor)
    diff = correlation_difference(t_logits, s_logits)
    return dict(corr_gap=float(np.abs(diff).mean()),
                agreement=float((t_logits.argmax(1) == s_logits.argmax(1)).mean()),
                corr_diff=diff.round(4).tolist())


DET = TaskSpec(
    name='det', title='Faster R-CNN: half-width R18 teacher -> quarter-width R18 student (shapes)',
    config_dir='configs/demo', teacher='teacher_faster_rcnn_r18_shapes.py',
    students={BASELINE: 'student_faster_rcnn_r18w16_shapes.py',
              'kd': 'kd_r18_r18w16_shapes.py', 'dkd': 'dkd_r18_r18w16_shapes.py',
              'dist': 'dist_r18_r18w16_shapes.py', 'reviewkd': 'reviewkd_r18_r18w16_shapes.py',
              'dkd_reviewkd': 'dkd_reviewkd_r18_r18w16_shapes.py'},
    default_methods=[BASELINE, 'kd', 'dkd', 'dist'],
    metric='coco/bbox_mAP', metric_name='bbox mAP', extra_metrics={'AP50': 'coco/bbox_mAP_50'},
    scale=100.0, make_data=detection_data, analyze=detection_analysis,
    pretrain={TEACHER: 'r18w32_det_shapes.py', 'student': 'r18w16_det_shapes.py'},
    make_pretrain_data=shapes_pretrain_data, full=dict(teacher_iters=1200, student_iters=900))


#: Methods a task offers when its config dir has ``<method>_*.py``: the
#: schedule methods (ESKD, PS-KD) and the logit-distillation plug-ins on the
#: KD / DKD rows (logit standardization; DOT, and the plain SGD KD it is
#: read against).
OPTIONAL_METHODS = ('eskd', 'pskd', 'kd_ls', 'dkd_ls', 'kd_dot', 'kd_sgd')


def task_from_configs(name: str, title: str, config_dir: str, metric: str, metric_name: str,
                      make_data: Callable, **kwargs) -> TaskSpec:
    """A task whose configs follow the demo's naming in ``config_dir``:
    ``teacher_*.py``, ``student_*.py`` and ``<method>_*.py``."""
    def first(pattern, exclude=()):
        hits = sorted(osp.basename(p) for p in glob.glob(osp.join(REPO, config_dir, pattern))
                      if not osp.basename(p).startswith(tuple(exclude)))
        return hits[0] if hits else pattern

    # 'kd_*.py' also matches kd_ls_*.py etc.: the variants are kept out of kd / dkd
    variants = [f'{m}_' for m in OPTIONAL_METHODS]
    students = {BASELINE: first('student_*.py'), 'kd': first('kd_*.py', variants),
                'dkd': first('dkd_*.py', ['dkd_reviewkd', *variants]),
                'dist': first('dist_*.py')}
    for method in OPTIONAL_METHODS:  # where the task has a config for them
        if glob.glob(osp.join(REPO, config_dir, f'{method}_*.py')):
            students[method] = first(f'{method}_*.py')
    return TaskSpec(name=name, title=title, config_dir=config_dir,
                    teacher=first('teacher_*.py'), students=students,
                    default_methods=[BASELINE, 'kd', 'dkd', 'dist'], metric=metric,
                    metric_name=metric_name, make_data=make_data, **kwargs)


#: ``--task`` -> its spec.
TASKS: Dict[str, TaskSpec] = {
    'det': DET,
    'seg': task_from_configs('seg', 'Segmentation: DeepLabV3 R18 teacher -> narrow student '
                             '(shapes)', 'configs/demo_seg', 'mIoU', 'mIoU', segmentation_data,
                             pretrain={TEACHER: 'r18v1c_w16_seg_shapes.py',
                                       'student': 'r18v1c_w8_seg_shapes.py'},
                             make_pretrain_data=shapes_pretrain_data,
                             full=dict(teacher_iters=2000, student_iters=1600)),
    'cls': task_from_configs('cls', 'Classification: ResNet teacher -> narrow student '
                             '(shapes_cls)', 'configs/demo_cls', 'accuracy/top1', 'top-1',
                             classification_data,
                             pretrain={TEACHER: 'resnet_cifar_w16_crops.py',
                                       'student': 'resnet_cifar_w8_crops.py'},
                             make_pretrain_data=crops_pretrain_data,
                             full=dict(teacher_iters=2400, student_iters=750)),
}

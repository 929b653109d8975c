"""Tiny query-based mmdet detectors (DINO, Deformable DETR, DAB-DETR, DETR)
and their batches for CPU tests: mmdet's packaged configs, shrunk (ResNet-18
stages, few encoder / decoder layers and queries, 3 classes)."""
import copy
import functools

import torch

from mmkd.registry import MODELS
from tests.helpers.det import mmdet_model

R18 = [128, 256, 512]  # ResNet-18 stages 2-4 (out_indices 1, 2, 3)
CONFIGS = dict(
    dino='dino/dino-4scale_r50_8xb2-12e_coco.py',
    ddetr_two_stage='deformable_detr/deformable-detr-refine-twostage_r50_16xb2-50e_coco.py',
    ddetr='deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
    dab_detr='dab_detr/dab-detr_r50_8xb2-50e_coco.py',
    detr='detr/detr_r50_8xb2-150e_coco.py',
    conditional_detr='conditional_detr/conditional-detr_r50_8xb2-50e_coco.py')


def _set_dims(node, embed_dims: int, ffn: int) -> None:
    """Every ``embed_dims`` / ``feedforward_channels`` of a transformer config,
    and dropout off (the identity tests compare a training forward with an
    eval one)."""
    if isinstance(node, dict):
        for key in list(node):
            if key == 'embed_dims':
                node[key] = embed_dims
            elif key == 'feedforward_channels':
                node[key] = ffn
            elif key in ('dropout', 'ffn_drop'):
                node[key] = 0.0
            else:
                _set_dims(node[key], embed_dims, ffn)
        for key in ('self_attn_cfg', 'cross_attn_cfg'):  # deformable attention: 0.1 by default
            attn = node.get(key)
            if isinstance(attn, dict) and ('num_levels' in attn or 'batch_first' in attn) and \
                    'attn_drop' not in attn:
                attn['dropout'] = 0.0
    elif isinstance(node, (list, tuple)):
        for item in node:
            _set_dims(item, embed_dims, ffn)


@functools.lru_cache()
def _tiny(family: str, embed_dims: int, num_queries: int, layers: int, dn_queries: int) -> dict:
    cfg = mmdet_model(CONFIGS[family]).to_dict()
    cfg['backbone'].update(depth=18, init_cfg=None, norm_eval=True, frozen_stages=-1)
    if len(cfg['neck']['in_channels']) > 1:  # the multi-scale (deformable) families
        cfg['neck'].update(in_channels=R18, out_channels=embed_dims,
                           norm_cfg=dict(type='GN', num_groups=8),
                           num_outs=cfg.get('num_feature_levels', 4))
    else:  # DETR / Conditional / DAB-DETR: the last stage, one level
        cfg['neck'].update(in_channels=[512], out_channels=embed_dims)
    for coder in ('encoder', 'decoder'):
        cfg[coder]['num_layers'] = layers
    _set_dims(cfg, embed_dims, 128)
    cfg['positional_encoding']['num_feats'] = embed_dims // 2
    if family == 'dab_detr':
        cfg['decoder']['query_dim'] = 4
    cfg['num_queries'] = num_queries
    cfg['test_cfg']['max_per_img'] = num_queries  # top-k over queries x classes at inference
    cfg['bbox_head']['num_classes'] = 3
    cfg['bbox_head']['embed_dims'] = embed_dims
    if 'dn_cfg' in cfg:
        cfg['dn_cfg']['group_cfg']['num_dn_queries'] = dn_queries
    return cfg


def tiny_detr(family: str = 'dino', embed_dims: int = 256, num_queries: int = 20,
              layers: int = 2, dn_queries: int = 10) -> dict:
    """A narrow ``family`` detector config (a key of :data:`CONFIGS`) with 3
    classes, no dropout and frozen BN statistics (training and eval forwards
    agree). mmdet's box sine embeddings have a fixed 128 features per
    coordinate, so DINO, two-stage Deformable DETR and Conditional DETR need
    ``embed_dims=256``; width is saved on layers, queries and FFNs."""
    return copy.deepcopy(_tiny(family, embed_dims, num_queries, layers, dn_queries))


def query_distiller(student: str = 'dino', teacher=None, **kwargs):
    """A ``mmkd.QueryDistiller`` on tiny detectors: ``student`` a family of
    :data:`CONFIGS`, ``teacher`` a family, a dict of :func:`tiny_detr`
    options for a DINO teacher, or a model config (default: the student's)."""
    if teacher is None or isinstance(teacher, str):
        teacher = tiny_detr(teacher or student)
    elif 'type' not in teacher:
        teacher = tiny_detr('dino', **teacher)
    cfg = dict(type='mmkd.QueryDistiller', student=tiny_detr(student), teacher=teacher,
               teacher_ckpt=None,
               distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', use_sigmoid=True)))
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    # teacher_ckpt=None leaves the teacher as built, and mmdet's DETR models
    # hold uninitialised memory until init_weights (level_embed: NaN or 1e38
    # on some builds), so the helper gives it its model's own init, drawn
    # under a forked RNG (the global stream stays the tests').
    with torch.random.fork_rng(devices=[]):
        model.teacher.init_weights()
    return model

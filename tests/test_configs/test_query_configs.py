"""The DETR-family configs (QueryDistiller) parse, state their settings and
mmdet's zoo teacher, and build with teacher_ckpt=None."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmkd.registry import MODELS
from tests.helpers import REPO

SWIN_L = ('https://download.openmmlab.com/mmdetection/v3.0/dino/dino-5scale_swin-l_8xb2-12e_coco/'
          'dino-5scale_swin-l_8xb2-12e_coco_20230228_072924-a654145f.pth')
#: config -> (loss key, student type, student epochs)
CONFIGS = {
    'kd/dino_swin-l_r50_coco.py': ('loss_kd', 'DINO', 12),
    'dist/dino_swin-l_r50_coco.py': ('loss_dist', 'DINO', 12),
    'dist/deformable_detr_dino_swin-l_r50_coco.py': ('loss_dist', 'DeformableDETR', 50),
}


def load(name):
    return Config.fromfile(osp.join(REPO, 'configs', name))


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_query_config_settings(name):
    cfg = load(name)
    key, student, epochs = CONFIGS[name]
    assert cfg.model.type == 'mmkd.QueryDistiller' and 'mmkd' in cfg.custom_imports.imports
    assert cfg.train_cfg.max_epochs == epochs and cfg.train_dataloader.batch_size == 2
    assert cfg.model.student.type == student and cfg.model.student.backbone.depth == 50
    assert cfg.model.student.as_two_stage and cfg.model.student.with_box_refine
    assert cfg.model.teacher == 'mmdet::dino/dino-5scale_swin-l_8xb2-12e_coco.py'
    assert cfg.model.teacher_ckpt == SWIN_L
    (loss_key, loss), = cfg.model.distill_losses.items()
    assert loss_key == key and loss.use_sigmoid is True and loss.tau == 1.0
    if key == 'loss_dist':
        assert (loss.beta, loss.gamma) == (1.0, 1.0)
    assert cfg.model.get('decoder_layers', 'last') == 'last'
    assert cfg.model.get('weighting') is None


def test_dino_config_builds():
    """The Swin-L teacher and R50 student build, and are accepted as a pair."""
    cfg = load('dist/deformable_detr_dino_swin-l_r50_coco.py')
    cfg.model.teacher_ckpt = None
    cfg.model.student.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert model.families == ('ddetr_two_stage', 'dino')
    assert type(model.teacher.backbone).__name__ == 'SwinTransformer'
    assert model.teacher.num_queries == 900 and model.student.num_queries == 300

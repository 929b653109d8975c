"""`type='mmkd.X'` resolves from every host library's registry (one registry
serves detection, segmentation and classification)."""
import pytest

import mmkd
from mmkd.losses import DISTLoss, DKDLoss, KDLoss
from mmkd.models import ABFConnector, DetectionDistiller
from mmkd.registry import HOOKS, MODELS


def test_mmkd_registries_are_children_of_mmengine_roots():
    from mmengine.registry import HOOKS as ROOT_HOOKS
    from mmengine.registry import MODELS as ROOT_MODELS
    assert MODELS.scope == 'mmkd' and MODELS.parent is ROOT_MODELS
    assert HOOKS.scope == 'mmkd' and HOOKS.parent is ROOT_HOOKS
    for name in ('KDLoss', 'DKDLoss', 'DISTLoss', 'HCLLoss', 'ABFConnector', 'DetectionDistiller'):
        assert MODELS.get(name) is not None, name
    assert mmkd.__version__


@pytest.mark.parametrize('host', ['mmdet.registry', 'mmseg.registry', 'mmpretrain.registry'])
def test_scoped_types_build_from_host_registries(host):
    import importlib
    registry = importlib.import_module(host).MODELS
    assert isinstance(registry.build(dict(type='mmkd.KDLoss', tau=2.0)), KDLoss)
    loss = registry.build(dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.5, tau=1.0))
    assert isinstance(loss, DKDLoss) and loss.beta == 0.5
    assert isinstance(registry.build(dict(type='mmkd.DISTLoss')), DISTLoss)
    assert registry.get('mmkd.ABFConnector') is ABFConnector
    assert registry.get('mmkd.DetectionDistiller') is DetectionDistiller

"""mmkd's own code forces no host-device sync in a distilled step.

On a GPU every ``item()``, ``bool(tensor)``, boolean-mask index, ... in the
step stalls the device. On the CPU the calls are counted instead
(tests/sync_counter.py), for one steady-state step of each distiller: the
forward (student loss, teacher, distillation terms) and the backward. Calls
made by the host libraries themselves (mmdet's sampler, mmseg's loss) are
theirs and not counted; calls whose innermost frame outside torch is in
``mmkd/`` are. The first step of a run may check once (before mmengine has
parsed a loss dict); the counted step is the second."""
import pytest
import torch

from mmkd.models import (ClassificationDistiller, DenseDistiller, DetectionDistiller,
                         SegmentationDistiller)
from tests.helpers.cls import cls_batch, tiny_resnet
from tests.helpers.det import SIGMOID_LOSSES, det_batch, tiny, tiny_faster_rcnn
from tests.helpers.seg import seg_batch, tiny_segmentor
from tests.sync_counter import SyncCounter

SOFTMAX = dict(loss_kd=dict(type='mmkd.KDLoss', tau=4.0),
               loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=2.0, tau=4.0),
               loss_dist=dict(type='mmkd.DISTLoss'))


def mmkd_syncs(model, inputs, samples):
    """Two steps as mmengine's train step runs them; the syncs of the second
    whose caller is mmkd's code."""
    model.train()
    for step in range(2):
        model.zero_grad()
        with SyncCounter() as counter:
            total, _ = model.parse_losses(model.loss(inputs, samples))
            total.backward()
    return [call for call in counter.calls if ' at mmkd' in call]


def det():
    torch.manual_seed(0)
    model = DetectionDistiller(tiny_faster_rcnn(), tiny_faster_rcnn(), distill_losses=SOFTMAX,
                               reviewkd=dict(connector=dict(
                                   type='mmkd.ABFConnector', in_channels=[32] * 5,
                                   out_channels=[32] * 5, mid_channels=32)))
    return model, det_batch(model)


def dense():
    torch.manual_seed(0)
    model = DenseDistiller(tiny('retinanet'), tiny('retinanet'), distill_losses=SIGMOID_LOSSES)
    return model, det_batch(model)


def seg():
    torch.manual_seed(0)
    losses = dict(loss_kd=SOFTMAX['loss_kd'], loss_dist=SOFTMAX['loss_dist'])
    model = SegmentationDistiller(tiny_segmentor(), tiny_segmentor(), distill_losses=losses,
                                  aux_distill_losses=dict(loss_aux_dist=dict(
                                      type='mmkd.DISTLoss', loss_weight=0.4)))
    ignore = torch.zeros(2, 64, 64, dtype=torch.bool)
    ignore[:, :16] = True  # some pixels ignored (255): weighted out, not indexed out
    return model, seg_batch(ignore=ignore)


def cls():
    torch.manual_seed(0)
    model = ClassificationDistiller(tiny_resnet(), tiny_resnet(width=16), distill_losses=SOFTMAX)
    return model, cls_batch(model, [0, 1, 2, 3])


@pytest.mark.parametrize('build', [det, dense, seg, cls], ids=['det', 'dense', 'seg', 'cls'])
def test_a_distilled_step_makes_no_sync_of_its_own(build):
    model, (inputs, samples) = build()
    assert mmkd_syncs(model, inputs, samples) == []


def test_the_counter_sees_a_sync_in_mmkd_code():
    """The filter is not vacuous: a sync in mmkd's code is reported (the
    first step's immediate teacher check, before mmengine parses a loss)."""
    model, (inputs, samples) = cls()
    with SyncCounter() as counter:
        model.loss(inputs, samples)
    assert any('teacher_precision.py' in call for call in counter.calls), counter.calls

"""The check's stand-ins for mmcv's CUDA ops (mmkd/gpucheck/ops_route.py),
used on a GPU whose mmcv has CPU ops only, agree with mmcv's own CPU kernels
(RoIAlign, NMS) and with mmdet's torch focal loss, here on the CPU."""
import importlib

import pytest
import torch

from mmkd.gpucheck import ops_route

pytestmark = pytest.mark.gpu


def test_roi_align_matches_mmcv():
    from mmcv.ops.roi_align import roi_align
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 8, 20, 24, generator=gen)
    boxes = torch.rand(30, 4, generator=gen).sort(1).values * 80
    rois = torch.cat([torch.randint(0, 2, (30, 1), generator=gen).float(), boxes], 1)
    for aligned in (True, False):
        want = roi_align(feats, rois, (7, 7), 0.25, 0, 'avg', aligned)
        got = ops_route._roi_align(feats, rois, (7, 7), 0.25, 0, 'avg', aligned)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    half = ops_route._roi_align(feats.bfloat16(), rois, (7, 7), 0.25, 0, 'avg', True)
    assert half.dtype == torch.bfloat16  # computed in float32, handed back in the input's dtype


@pytest.mark.parametrize('score_threshold, max_num', [(0, -1), (0.3, 5)])
def test_nms_matches_mmcv(score_threshold, max_num):
    from mmcv.ops.nms import NMSop
    gen = torch.Generator().manual_seed(1)
    corner = torch.rand(60, 2, generator=gen) * 50
    boxes = torch.cat([corner, corner + 5 + torch.rand(60, 2, generator=gen) * 20], 1)
    scores = torch.rand(60, generator=gen)
    want = NMSop.apply(boxes, scores, 0.5, 0, score_threshold, max_num)
    got = ops_route._TorchvisionNMS.apply(boxes, scores, 0.5, 0, score_threshold, max_num)
    assert torch.equal(got, want)


def test_focal_loss_matches_mmdets_torch_formula():
    from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss
    gen = torch.Generator().manual_seed(2)
    pred = torch.randn(40, 6, generator=gen)
    labels = torch.randint(0, 7, (40, ), generator=gen)  # 6 = background
    onehot = torch.nn.functional.one_hot(labels, 7)[:, :6].float()
    want = py_sigmoid_focal_loss(pred, onehot, gamma=2.0, alpha=0.25, reduction='none')
    got = ops_route._focal_elementwise(pred, labels, 2.0, 0.25, None, 'none')
    torch.testing.assert_close(got, want)


def test_routing_patches_what_mmdet_calls():
    msda = importlib.import_module('mmcv.ops.multi_scale_deform_attn')
    nms = importlib.import_module('mmcv.ops.nms')
    roi_align = importlib.import_module('mmcv.ops.roi_align')
    focal = importlib.import_module('mmdet.models.losses.focal_loss')
    saved = (roi_align.roi_align, nms.NMSop, msda.IS_CUDA_AVAILABLE, focal._sigmoid_focal_loss)
    try:
        routed = ops_route.route_through_torchvision()
        assert len(routed) == 4
        assert roi_align.roi_align is ops_route._roi_align
        assert nms.NMSop is ops_route._TorchvisionNMS and msda.IS_CUDA_AVAILABLE is False
        assert focal._sigmoid_focal_loss is ops_route._focal_elementwise
        boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
        dets, keep = nms.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
        assert keep.tolist() == [0, 2]
        _, keep = nms.batched_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 1, 0]),
                                  dict(type='nms', iou_threshold=0.5))
        assert sorted(keep.tolist()) == [0, 1, 2]  # the overlapping pair is of two classes
        from mmcv.ops import RoIAlign
        feats = torch.randn(1, 4, 16, 16)
        rois = torch.tensor([[0., 2., 2., 40., 30.]])
        torch.testing.assert_close(RoIAlign((7, 7), 0.25, 0)(feats, rois),
                                   ops_route._roi_align(feats, rois, (7, 7), 0.25, 0))
    finally:
        (roi_align.roi_align, nms.NMSop, msda.IS_CUDA_AVAILABLE,
         focal._sigmoid_focal_loss) = saved

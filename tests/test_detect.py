"""The detector contract, the loss, and the numpy decode that every runtime shares."""

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from edgedet.detect.model import Detector, build_detector
from edgedet.errors import UsageError
from edgedet.runtime.detections import Detections
from edgedet.runtime.postprocess import anchor_points, batched_nms, decode, nms, to_original
from edgedet.space import ArchSpec

TINY = ArchSpec.parse("tiny@64")


def _targets(*boxes_and_labels):
    return [{"boxes": torch.tensor(b, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(l)}
            for b, l in boxes_and_labels]


def test_training_returns_losses_and_eval_returns_detections():
    torch.manual_seed(0)
    model = Detector(TINY, 3)
    images = torch.rand(2, 3, 64, 64) * 255
    losses = model(images, _targets(([[4, 4, 30, 40]], [1]), ([], [])))
    assert set(losses) == {"loss_cls", "loss_box"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.head.parameters())
    detections = model.eval()(images)
    assert len(detections) == 2 and all(isinstance(d, Detections) for d in detections)


@pytest.mark.parametrize("targets, message", [
    (_targets(([[10, 10, 5, 20]], [0])), "degenerate box"),
    (_targets(([[1, 1, 5, 5]], [3])), "label 3 outside 0..2"),
    ([{"boxes": torch.zeros(2, 4), "labels": torch.zeros(1, dtype=torch.long)}], "with N labels"),
])
def test_malformed_targets_raise_a_clear_error(targets, message):
    with pytest.raises(UsageError, match=message):
        Detector(TINY, 3)(torch.zeros(1, 3, 64, 64), targets)


def test_detector_decodes_with_the_numpy_decode():
    torch.manual_seed(0)
    model = Detector(ArchSpec.parse("tiny@128"), 5).eval()
    raw = model.raw(torch.rand(1, 3, 128, 128) * 255)[0]
    raw[:, 4:] += torch.randn_like(raw[:, 4:]) * 4  # plenty of candidates for NMS to work on
    raw[:, :4] += torch.randn_like(raw[:, :4])
    points, strides = anchor_points(128)
    ours, theirs = decode(raw.detach().numpy(), points, strides), model.decode(raw.detach())
    assert len(ours) == len(theirs) > 10
    np.testing.assert_allclose(ours.boxes_xyxy, theirs.boxes_xyxy, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(ours.scores, theirs.scores, rtol=1e-5)
    np.testing.assert_array_equal(ours.labels, theirs.labels)


def test_numpy_nms_matches_torchvision():
    from torchvision.ops import batched_nms as tv_batched_nms

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (300, 2))], 1).astype(np.float32)
    scores, labels = rng.uniform(size=300).astype(np.float32), rng.integers(0, 3, 300)
    expected = tv_batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels), 0.5)
    np.testing.assert_array_equal(batched_nms(boxes, scores, labels, 0.5), expected.numpy())
    assert len(nms(boxes, scores, 1.0)) == 300


def test_to_original_undoes_the_letterbox():
    det = Detections(np.array([[10, 20, 300, 330]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64))
    back = to_original(det, 0.5, (600, 500))
    np.testing.assert_allclose(back.boxes_xyxy, [[20, 40, 500, 600]])  # x clipped to the 500-px width


def test_detector_learns_a_box():
    """Overfitting one image must put a confident box on the object: the loss and assignment really train."""
    torch.manual_seed(0)
    model = Detector(TINY, 2)
    image = torch.full((1, 3, 64, 64), 40.0)
    image[:, :, 16:48, 8:40] = 220.0  # a bright square
    targets = _targets(([[8, 16, 40, 48]], [1]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = sum(model.train()(image, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    best = model.eval()(image)[0]
    assert best.labels[0] == 1 and best.scores[0] > 0.5
    assert box_iou(torch.from_numpy(best.boxes_xyxy[:1]), targets[0]["boxes"]).item() > 0.7


def test_ssdlite_baseline_has_the_detector_contract():
    """torchvision's SSDlite head, boxes and loss on an edgedet backbone: losses, clear errors, decoded raw output."""
    model = build_detector(TINY, 3, head="ssdlite")
    images = torch.rand(2, 3, 64, 64) * 255
    losses = model.train()(images, _targets(([[4, 4, 30, 40]], [2]), ([], [])))
    assert set(losses) == {"loss_cls", "loss_box"} and all(torch.isfinite(v) for v in losses.values())
    with pytest.raises(UsageError, match="label 3 outside 0..2"):
        model(images, _targets(([[4, 4, 30, 40]], [3]), ([], [])))
    raw = model.eval().raw(images)
    assert raw.shape == (2, len(model.anchors), 4 + 3)
    assert torch.all(raw[..., 4:] >= 0) and torch.all(raw[..., 4:].sum(-1) < 1)  # probabilities, background dropped
    assert torch.all(raw[..., 2] > raw[..., 0]) and torch.all(raw[..., 3] > raw[..., 1])
    assert isinstance(model(images)[0], Detections)
    with pytest.raises(UsageError, match="head 'yolo'"):
        build_detector(TINY, 3, head="yolo")

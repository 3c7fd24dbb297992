"""Decoding the raw head output and NMS, in numpy: the one post-processing of every edgedet model, torch and ONNX
Runtime alike, so their predictions differ only by the network's own float rounding.

Raw head layout, one tensor ``(B, N, 4 + K)``: for every anchor point of the stride-8, 16 and 32 grids in turn
(row-major), 4 box-regression values then K class logits. The box is ``(cx - l, cy - t, cx + r, cy + b)`` with
``(l, t, r, b) = exp(reg) * stride`` around the point centre ``((x + 0.5) * stride, (y + 0.5) * stride)``; class
scores are ``sigmoid(logit)``. Models that decode inside the graph (the SSDlite baseline) output boxes and
probabilities instead: ``select_boxes``.
"""

from __future__ import annotations

import numpy as np

from edgedet.runtime.detections import Detections

STRIDES = (8, 16, 32)
REG_CLIP = 10.0  # exp() of more than this is no box


def anchor_points(imgsz: int, strides: tuple[int, ...] = STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """((N, 2) point centres in model pixels, (N,) their strides), in the head's output order."""
    centres, point_strides = [], []
    for stride in strides:
        cells = imgsz // stride
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        centres.append((np.stack([xs, ys], -1).reshape(-1, 2) + 0.5) * stride)
        point_strides.append(np.full(cells * cells, stride))
    return np.concatenate(centres).astype(np.float32), np.concatenate(point_strides).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS; indices of the kept boxes by descending score (as torchvision.ops.nms)."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        w = (np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])).clip(0)
        h = (np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])).clip(0)
        inter = w * h
        iou = inter / (areas[best] + areas[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return np.array(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Per-class NMS by offsetting each class's boxes apart (torchvision's trick)."""
    if boxes.size == 0:
        return np.zeros(0, np.int64)
    offsets = labels.astype(np.float32)[:, None] * (boxes.max() + 1)
    return nms(boxes + offsets, scores, iou_threshold)


def _top_candidates(scores: np.ndarray, threshold: float, pre_nms: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, class) pairs above ``threshold``, among the ``pre_nms`` rows whose best class scores highest."""
    best = scores.max(1)
    candidates = np.nonzero(best > threshold)[0]
    candidates = candidates[np.argsort(-best[candidates], kind="stable")[:pre_nms]]
    rows, labels = np.nonzero(scores[candidates] > threshold)
    return candidates[rows], labels


def _after_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float, max_det: int) -> Detections:
    keep = batched_nms(boxes, scores, labels, iou)[:max_det]
    return Detections(boxes[keep].astype(np.float32), scores[keep].astype(np.float32), labels[keep].astype(np.int64))


def decode(raw: np.ndarray, points: np.ndarray, strides: np.ndarray, *, conf: float = 0.05, iou: float = 0.6,
           pre_nms: int = 1000, max_det: int = 100) -> Detections:
    """One image's raw head output ``(N, 4 + K)`` -> detections in model-input pixels."""
    logits = raw[:, 4:]
    # sigmoid(x) > conf, tested on logits before any exp
    point_idx, labels = _top_candidates(logits, np.log(conf / (1 - conf)), pre_nms)
    scores = 1 / (1 + np.exp(-logits[point_idx, labels]))
    distances = np.exp(np.minimum(raw[point_idx, :4], REG_CLIP)) * strides[point_idx, None]  # (M, 4) l, t, r, b
    centre = points[point_idx]
    boxes = np.concatenate([centre - distances[:, :2], centre + distances[:, 2:]], 1)
    return _after_nms(boxes, scores, labels, iou, max_det)


def select_boxes(raw: np.ndarray, *, conf: float = 0.05, iou: float = 0.6, pre_nms: int = 1000,
                 max_det: int = 100) -> Detections:
    """One image's decoded output ``(N, 4 + K)`` (x1, y1, x2, y2, then K probabilities; SSDlite exports this)
    -> detections in model-input pixels."""
    rows, labels = _top_candidates(raw[:, 4:], conf, pre_nms)
    return _after_nms(raw[rows, :4], raw[rows, 4 + labels], labels, iou, max_det)


def to_original(detections: Detections, scale: float, orig_size: tuple[int, int]) -> Detections:
    """Undo the letterbox: model-input pixels -> original-image pixels, clipped to the image."""
    height, width = orig_size
    boxes = (detections.boxes_xyxy / scale).clip(0, [width, height, width, height]).astype(np.float32)
    return Detections(boxes, detections.scores, detections.labels)

"""Weighted box fusion (Solovyev, Wang and Gabruseva, "Weighted boxes fusion", 2021) of several models'
detections of one image, in numpy.

Every model's boxes share one label space. Per class, boxes are taken by descending ``score * weight`` and each
joins the cluster whose fused box it overlaps most at IoU >= ``iou``, else starts a cluster. A cluster's box is the
``score * weight``-weighted mean of its members' boxes (recomputed as each joins, and matched against). Its score is
``sum over models of weight * (that model's best score in the cluster) / sum of weights``: a box that one of N equal
teachers sees keeps 1/N of its score, one all of them see keeps their mean. The paper averages over the cluster's
boxes and rescales by ``min(models, boxes) / models``; that is the same when each model gives a cluster at most one
box, and unlike it a model's own weaker duplicate does not lower its best box. Written here rather than taken from
``ensemble-boxes`` (which wants coordinates normalised to 0..1 and pulls in pandas and numba) as it is 40 lines.

``Ensemble`` is several teachers as one model (what ``edgedet label`` runs, and what ``edgedet eval A.onnx+B.onnx``
scores): each one's classes mapped by name onto a shared list, their boxes fused, those scoring ``conf`` kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgedet.data.formats import canonical_name
from edgedet.runtime.detections import Detections
from edgedet.runtime.peers import Teacher

FUSION_IOU = 0.55  # the paper's


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box with each of (M, 4) boxes."""
    width = (np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])).clip(0)
    height = (np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])).clip(0)
    inter = width * height
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter + 1e-9)


def _clusters(boxes: np.ndarray, weighted: np.ndarray, iou: float) -> list[list[int]]:
    """Member indices of each cluster of one class's boxes, taken by descending weighted score."""
    members: list[list[int]] = []
    fused = np.zeros((0, 4))
    for index in np.argsort(-weighted, kind="stable"):
        overlaps = _iou(boxes[index], fused)
        best = int(overlaps.argmax()) if len(fused) else -1
        if best < 0 or overlaps[best] < iou:
            members.append([int(index)])
            fused = np.vstack([fused, boxes[index]])
            continue
        members[best].append(int(index))
        w = weighted[members[best]]
        fused[best] = (boxes[members[best]] * w[:, None]).sum(0) / w.sum()
    return members


def weighted_box_fusion(detections: Sequence[Detections], *, weights: Sequence[float] | None = None,
                        iou: float = FUSION_IOU) -> Detections:
    """One image's detections by several models (labels in one label space) -> fused detections, best first."""
    model_weights = np.ones(len(detections)) if weights is None else np.asarray(weights, np.float64)
    if len(model_weights) != len(detections):
        raise ValueError(f"{len(model_weights)} weights for {len(detections)} models")
    if not detections or not sum(len(d) for d in detections):
        return Detections.empty()
    boxes = np.concatenate([d.boxes_xyxy for d in detections]).astype(np.float64)
    scores = np.concatenate([d.scores for d in detections]).astype(np.float64)
    labels = np.concatenate([d.labels for d in detections])
    model = np.concatenate([np.full(len(d), m) for m, d in enumerate(detections)])
    weighted = scores * model_weights[model]
    out_boxes, out_scores, out_labels = [], [], []
    for label in np.unique(labels):
        of_class = np.nonzero(labels == label)[0]
        for cluster in _clusters(boxes[of_class], weighted[of_class], iou):
            rows = of_class[cluster]
            out_boxes.append((boxes[rows] * weighted[rows, None]).sum(0) / weighted[rows].sum())
            best_per_model = np.zeros(len(detections))
            np.maximum.at(best_per_model, model[rows], weighted[rows])
            out_scores.append(best_per_model.sum() / model_weights.sum())
            out_labels.append(label)
    order = np.argsort(-np.asarray(out_scores), kind="stable")
    return Detections(np.asarray(out_boxes, np.float32)[order], np.asarray(out_scores, np.float32)[order],
                      np.asarray(out_labels, np.int64)[order])


class Ensemble:
    """Several teachers as one ``Teacher`` over ``class_names`` (default: every class any of them has, first seen
    first), matched by canonical name; a teacher's other classes are dropped."""

    def __init__(self, teachers: Sequence[Teacher], *, class_names: list[str] | None = None, conf: float = 0.05,
                 iou: float = FUSION_IOU, weights: Sequence[float] | None = None) -> None:
        if class_names is None:
            first_seen: dict[str, str] = {}
            for teacher in teachers:
                for name in teacher.class_names:
                    first_seen.setdefault(canonical_name(name), name)
            class_names = list(first_seen.values())
        index = {canonical_name(n): i for i, n in enumerate(class_names)}
        self.teachers, self.class_names, self.weights = list(teachers), class_names, weights
        self.conf, self.iou = conf, iou
        self.label_maps = [np.array([index.get(canonical_name(n), -1) for n in t.class_names], np.int64)
                           for t in teachers]

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        found = []
        for teacher, label_map in zip(self.teachers, self.label_maps):
            detections = teacher(image_bgr)
            labels = label_map[detections.labels]
            wanted = labels >= 0
            found.append(Detections(detections.boxes_xyxy[wanted], detections.scores[wanted], labels[wanted]))
        fused = weighted_box_fusion(found, weights=self.weights, iou=self.iou)
        keep = fused.scores >= self.conf
        return Detections(fused.boxes_xyxy[keep], fused.scores[keep], fused.labels[keep])

"""COCO box evaluation with pycocotools, torch-free (numpy + pycocotools + rich only).

The flow: each image's ``Detections`` (``boxes_xyxy (N, 4)`` in original-image pixels, ``scores (N,)``,
``labels (N,)`` indexing the model's class list) → ``detections_to_coco`` → one list of COCO result dicts →
``evaluate_coco`` → ``EvalReport``.

Metrics are in percent (0..100, as papers report), keyed ``AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs,
ARm, ARl``. A metric pycocotools cannot define (it returns -1: no ground truth of that size among the evaluated
images) is NaN here, ``None`` in ``to_json()`` and "-" in tables, rather than a made-up 0.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from rich.table import Table

from edgedet.errors import UsageError

METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
TABLE_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")


class DetectionsLike(Protocol):
    boxes_xyxy: np.ndarray  # (N, 4) float, original-image pixels
    scores: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) int, index into the model's class list


def detections_to_coco(image_id: int, det: DetectionsLike, category_ids: list[int]) -> list[dict]:
    """One image's detections as COCO result dicts; label ``i`` becomes ``category_ids[i]``, boxes become xywh."""
    boxes = np.asarray(det.boxes_xyxy, dtype=np.float64).reshape(-1, 4)  # (N, 4)
    scores = np.asarray(det.scores, dtype=np.float64).reshape(-1)  # (N,)
    labels = np.asarray(det.labels).reshape(-1).astype(np.int64)  # (N,)
    if not len(boxes) == len(scores) == len(labels):
        counts = f"{len(boxes)} boxes, {len(scores)} scores, {len(labels)} labels"
        raise UsageError(f"detections disagree in length: {counts}")
    bad = labels[(labels < 0) | (labels >= len(category_ids))]
    if bad.size:
        raise UsageError(
            f"detection label {int(bad[0])} is outside the model's {len(category_ids)} classes: "
            "check that the class list matches the model"
        )
    xywh = np.round(np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1), 2)  # (N, 4)
    return [
        {
            "image_id": int(image_id),
            "category_id": int(category_ids[label]),
            "bbox": [float(v) for v in box],
            "score": float(score),
        }
        for box, score, label in zip(xywh, scores, labels)
    ]


@dataclass
class EvalReport:
    """COCO box metrics in percent, AP per class name (classes without ground truth omitted), and the counts."""

    metrics: dict[str, float]
    per_class: dict[str, float]
    num_images: int
    num_detections: int
    summary_text: str = field(default="", repr=False)

    def to_json(self) -> dict[str, Any]:
        """Flat dict for ``--json-out``: metrics at top level (NaN → None), ``per_class_AP`` nested."""
        out: dict[str, Any] = {key: (None if math.isnan(v) else v) for key, v in self.metrics.items()}
        out["per_class_AP"] = dict(self.per_class)
        out["num_images"] = self.num_images
        out["num_detections"] = self.num_detections
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalReport:
        """Inverse of ``to_json`` (``summary_text`` is not saved there), for comparing saved reports."""
        metrics = {key: math.nan if data.get(key) is None else float(data[key]) for key in METRIC_KEYS}
        return cls(metrics, dict(data.get("per_class_AP", {})), int(data["num_images"]), int(data["num_detections"]))


def _empty_results(coco_gt: COCO) -> COCO:
    """A results object with no detections (``COCO.loadRes`` fails on an empty list)."""
    coco_dt = COCO()
    coco_dt.dataset = {
        "images": list(coco_gt.dataset["images"]),
        "categories": list(coco_gt.dataset["categories"]),
        "annotations": [],
    }
    coco_dt.createIndex()
    return coco_dt


def evaluate_coco(
    coco_gt: COCO,
    results: list[dict],
    *,
    image_ids: list[int],
    category_ids: list[int],
    class_names: list[str],
) -> EvalReport:
    """COCO bbox evaluation restricted to ``image_ids`` and ``category_ids`` (``class_names[i]`` names
    ``category_ids[i]``); results for other images or categories are dropped before scoring."""
    if not image_ids:
        raise UsageError("no images to evaluate")
    if not category_ids:
        raise UsageError("no categories to evaluate")
    if len(class_names) != len(category_ids):
        raise UsageError(f"{len(class_names)} class names for {len(category_ids)} category ids")
    missing_images = sorted(set(image_ids) - set(coco_gt.getImgIds()))
    if missing_images:
        raise UsageError(f"image ids {missing_images[:5]} are not in the annotation file")
    missing_cats = sorted(set(category_ids) - set(coco_gt.getCatIds()))
    if missing_cats:
        raise UsageError(f"category ids {missing_cats[:5]} are not in the annotation file")

    keep_images, keep_cats = set(image_ids), set(category_ids)
    # copies: loadRes writes 'id', 'area', 'iscrowd' into the dicts it is given
    kept = [dict(r) for r in results if r["image_id"] in keep_images and r["category_id"] in keep_cats]

    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        coco_dt = coco_gt.loadRes(kept) if kept else _empty_results(coco_gt)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.imgIds = list(image_ids)
        evaluator.params.catIds = list(category_ids)
        evaluator.evaluate()
        evaluator.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        evaluator.summarize()

    metrics = {key: (math.nan if s < 0 else float(s) * 100.0) for key, s in zip(METRIC_KEYS, evaluator.stats)}

    params = evaluator.params
    precision = evaluator.eval["precision"]  # (T iou thresholds, R recall thresholds, K classes, A areas, M maxDets)
    area_all, max_100 = params.areaRngLbl.index("all"), params.maxDets.index(100)
    name_of = dict(zip(category_ids, class_names))
    per_class: dict[str, float] = {}
    for k, cat_id in enumerate(params.catIds):  # evaluate() sorted and deduplicated catIds: index by its order
        p = precision[:, :, k, area_all, max_100]  # (T, R)
        p = p[p > -1]
        if p.size:
            per_class[name_of[int(cat_id)]] = float(p.mean()) * 100.0
    return EvalReport(metrics, per_class, len(set(image_ids)), len(kept), summary.getvalue())


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def report_table(reports: dict[str, EvalReport]) -> Table:
    """Models side by side (one row each), the best value per column in bold when there are several models."""
    table = Table(title="COCO box metrics (%)")
    table.add_column("model")
    for key in TABLE_KEYS:
        table.add_column(key, justify="right")
    best = {}
    for key in TABLE_KEYS:
        values = [r.metrics.get(key, math.nan) for r in reports.values()]
        finite = [v for v in values if not math.isnan(v)]
        best[key] = max(finite) if len(reports) > 1 and finite else None
    for name, report in reports.items():
        cells = []
        for key in TABLE_KEYS:
            value = report.metrics.get(key, math.nan)
            text = _fmt(value)
            cells.append(f"[bold]{text}[/bold]" if best[key] is not None and value == best[key] else text)
        table.add_row(name, *cells)
    return table


def per_class_table(report: EvalReport, top: int | None = None) -> Table:
    """AP per class, best first; ``top`` keeps only the first rows."""
    rows = sorted(report.per_class.items(), key=lambda item: (-item[1], item[0]))
    shown = rows if top is None else rows[:top]
    title = "AP per class (%)" if len(shown) == len(rows) else f"AP per class (%), top {len(shown)} of {len(rows)}"
    table = Table(title=title)
    table.add_column("class")
    table.add_column("AP", justify="right")
    for name, ap in shown:
        table.add_row(name, _fmt(ap))
    return table

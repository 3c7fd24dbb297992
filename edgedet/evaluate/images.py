"""Evaluate any predictor on a COCO-format split, reading images exactly as deployment does (OpenCV, BGR).

A predictor is a callable ``image_bgr -> Detections`` in original-image pixels; the torch checkpoint, the ONNX FP32
and the ONNX INT8 models all go through this one loop, so their numbers are comparable. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgedet.data.annotations import annotated_classes, find_split, load_coco, select_categories
from edgedet.data.formats import canonical_name
from edgedet.errors import UsageError
from edgedet.evaluate.coco_eval import EvalReport, detections_to_coco, evaluate_coco
from edgedet.progress import progress_track, stderr
from edgedet.runtime.detections import Detections
from edgedet.runtime.preprocess import read_bgr

if TYPE_CHECKING:
    from pycocotools.coco import COCO

    from edgedet.runtime.session import Providers

Predictor = Callable[[np.ndarray], Detections]


def split_images(data: Path, split: str) -> list[Path]:
    """The split's image files in image-id order, the order evaluation reads them (deterministic calibration and
    timing sets)."""
    annotations, folder = find_split(data, split)
    coco = load_coco(annotations)
    return [folder / coco.imgs[i]["file_name"] for i in sorted(coco.getImgIds())]


def evaluate_predictor(predict: Predictor, annotations: Path, images: Path, class_names: list[str], *,
                       max_images: int | None = None, classes: list[str] | None = None,
                       image_ids: list[int] | None = None) -> tuple[EvalReport, list[dict]]:
    """Run ``predict`` on every image of the split (or the first ``max_images``, or those of ``image_ids``); the
    COCOeval report and the detections in COCO results format.

    Classes match by name; a model class the split does not annotate (an 80-class model on a person set) is left
    out of the evaluation, with its detections, rather than counted as false positives; so is one outside
    ``classes`` when given (an 80-class peer scored on person alone, beside a person model)."""
    coco = load_coco(annotations)
    present, class_names, category_ids = scored_classes(coco, annotations, class_names, classes)
    new_label = np.cumsum(present) - 1  # model label -> label among the kept classes
    image_ids = list(image_ids) if image_ids is not None else sorted(coco.getImgIds())[:max_images]
    results, evaluated, unreadable = [], [], 0
    for image_id in progress_track(image_ids, f"evaluating {len(image_ids)} images"):
        image = read_bgr(images / coco.imgs[image_id]["file_name"])
        if image is None:
            unreadable += 1
            continue
        det = predict(image)
        kept = present[det.labels]
        det = Detections(det.boxes_xyxy[kept], det.scores[kept], new_label[det.labels[kept]])
        results += detections_to_coco(image_id, det, category_ids)
        evaluated.append(image_id)
    if not evaluated:
        raise UsageError(f"no readable images in {images}")
    if unreadable:
        stderr.print(f"warning: skipped {unreadable} of {len(image_ids)} images that could not be read")
    report = evaluate_coco(coco, results, image_ids=evaluated, category_ids=category_ids, class_names=class_names)
    return report, results


def scored_classes(coco: COCO, annotations: Path, class_names: list[str], classes: list[str] | None = None
                   ) -> tuple[np.ndarray, list[str], list[int]]:
    """Which of the model's classes the split scores (annotated there, and among ``classes`` when given): the mask
    over the model's classes, their names and their category ids."""
    present = np.array(annotated_classes(coco, class_names), bool)
    if classes is not None:
        wanted = {canonical_name(c) for c in classes}
        present &= np.array([canonical_name(n) in wanted for n in class_names], bool)
    if not present.any():
        among = f" among {', '.join(classes)}" if classes is not None else ""
        raise UsageError(f"none of the model's classes ({', '.join(class_names[:5])}...) is annotated in "
                         f"{annotations}{among}: evaluate it on data (and classes) it has")
    kept = [name for name, keep in zip(class_names, present) if keep]
    return present, kept, select_categories(coco, kept)[0]


def evaluate_subsets(results: list[dict], annotations: Path, class_names: list[str], subsets: list[list[int]]
                     ) -> list[EvalReport]:
    """``evaluate_predictor``'s detections scored again on each of several image subsets (one inference, several
    COCOevals): how far the metric moves between subsets is the evaluation's own noise."""
    if not subsets:
        return []
    coco = load_coco(annotations)
    _, class_names, category_ids = scored_classes(coco, annotations, class_names)
    return [evaluate_coco(coco, results, image_ids=subset, category_ids=category_ids, class_names=class_names)
            for subset in subsets]


def load_predictor(model: str | Path, *, conf: float = 0.05, threads: int = 1, providers: Providers | None = None,
                   classes: list[str] | None = None) -> tuple[Predictor, list[str]]:
    """A predictor and its class names: an edgedet checkpoint (needs torch), or any ONNX detector edgedet reads (an
    export with its sidecar, another project's model through its adapter, ``PATH.onnx:ADAPTER`` naming one), or
    several of those fused as one, ``A.onnx+B.onnx`` (weighted box fusion, as ``edgedet label`` fuses teachers);
    ``classes`` keeps only those of an ONNX model's classes, matched by name."""
    spec = str(model)
    if "+" in spec and not Path(spec).is_file():
        from edgedet.label.fusion import Ensemble
        from edgedet.runtime.peers import load_teacher

        ensemble = Ensemble([load_teacher(part, class_names=classes, conf=conf, threads=threads, providers=providers)
                             for part in spec.split("+")], conf=0.0)
        return ensemble, ensemble.class_names
    if ".onnx" in Path(spec).name:
        from edgedet.runtime.peers import load_teacher

        detector = load_teacher(spec, class_names=classes, conf=conf, threads=threads, providers=providers)
        return detector, detector.class_names
    if classes:
        raise UsageError(f"{spec}: a class subset applies to ONNX models; export the checkpoint first")
    from edgedet.detect.predict import TorchPredictor
    from edgedet.train.checkpoint import load_detector

    net, state = load_detector(Path(spec))
    return TorchPredictor(net, conf=conf), list(state["class_names"])

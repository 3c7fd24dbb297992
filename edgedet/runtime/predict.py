"""``edgedet predict``: a model on an image, a folder, a glob or a video -> annotated copies, a COCO results JSON
(pycocotools' ``loadRes`` takes it) and one JSON line per image. Torch-free for ONNX models.

Image and category ids: with a COCO annotation file, its own (images matched by file name, classes by name), so the
results score against it; else images numbered 1, 2, ... in the order read (for a video, the frame number) and
COCO's category ids where a class name is COCO's. Every JSON line names its file and id.
"""

from __future__ import annotations

import glob
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgedet.data.annotations import load_coco
from edgedet.data.formats import IMAGE_SUFFIXES, canonical_name, category_for
from edgedet.errors import UsageError
from edgedet.evaluate.coco_eval import detections_to_coco
from edgedet.evaluate.images import Predictor
from edgedet.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from edgedet.progress import progress_track
from edgedet.runtime.camera import VideoSaver, draw
from edgedet.runtime.detections import Detections
from edgedet.runtime.preprocess import read_bgr

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


@dataclass
class PredictSummary:
    kind: str = "images"  # or "video"
    skipped: list[str] = field(default_factory=list)  # unreadable files
    detections: int = 0
    times_ms: list[float] = field(default_factory=list)  # per image: pre-processing, network, decode + NMS

    @property
    def images(self) -> int:
        """Images (or frames) predicted on."""
        return len(self.times_ms)

    def to_json(self) -> dict[str, Any]:
        median = float(np.median(self.times_ms)) if self.times_ms else float("nan")
        return {"images": self.images, "skipped": len(self.skipped), "detections": self.detections,
                "median_ms": median, "fps": 1000 / median if self.times_ms else 0.0}


def source_files(source: str) -> tuple[str, list[Path]]:
    """("video", [file]) or ("images", files) for an image file, a folder (its images, sorted) or a glob."""
    path = Path(source)
    if any(char in source for char in "*?["):
        files = sorted(Path(p) for p in glob.glob(source, recursive=True))
        files = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file():
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return "video", [path]
        if suffix not in IMAGE_SUFFIXES:
            raise UsageError(f"--source {source}: not an image ({', '.join(sorted(IMAGE_SUFFIXES))}) or a video "
                             f"({', '.join(sorted(VIDEO_SUFFIXES))})")
        files = [path]
    else:
        raise UsageError(f"--source {source}: no such file or folder")
    if not files:
        raise UsageError(f"--source {source}: no images there (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return "images", files


def result_ids(annotations: Path | None, class_names: list[str]) -> tuple[dict[str, int], list[int]]:
    """(file name -> image id, category id per model class): the annotation file's where it has them."""
    category_ids = [category_for(name, index)["id"] for index, name in enumerate(class_names)]
    if annotations is None:
        return {}, category_ids
    if not Path(annotations).is_file():
        raise UsageError(f"--coco-ann {annotations}: no such file")
    coco = load_coco(annotations)
    by_name = {canonical_name(c["name"]): c["id"] for c in coco.cats.values()}
    images = {Path(image["file_name"]).name: image_id for image_id, image in coco.imgs.items()}
    return images, [by_name.get(canonical_name(name), own) for name, own in zip(class_names, category_ids)]


def _frames(kind: str, files: list[Path], summary: PredictSummary) -> Iterator[tuple[str, np.ndarray, float]]:
    """(name, BGR image, fps) per image or video frame; unreadable images are counted in ``summary.skipped``."""
    if kind == "video":
        capture = cv2.VideoCapture(str(files[0]))
        if not capture.isOpened():
            raise UsageError(f"--source {files[0]}: OpenCV cannot open this video")
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        index = 0
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                index += 1
                yield f"{files[0].name}#{index}", frame, fps
        finally:
            capture.release()
    for path in files:
        image = read_bgr(path)
        if image is None:
            summary.skipped.append(str(path))
            continue
        yield str(path), image, 0.0


def _record(name: str, image_id: int, image: np.ndarray, found: Detections, class_names: list[str]) -> dict:
    return {"file": name, "image_id": image_id, "height": int(image.shape[0]), "width": int(image.shape[1]),
            "detections": [{"class": class_names[int(label)], "score": round(float(score), 4),
                            "box_xyxy": [round(float(v), 1) for v in box]}
                           for box, score, label in zip(found.boxes_xyxy, found.scores, found.labels)]}


def predict_source(predict: Predictor, class_names: list[str], source: str, out: Path, lines_out: Path, *,
                   save_dir: Path | None, annotations: Path | None = None) -> PredictSummary:
    """Run ``predict`` on every image (or frame) of ``source``; write the COCO results to ``out``, the JSON lines
    to ``lines_out`` and, with ``save_dir``, the annotated images (or video). Files appear only when done."""
    kind, files = source_files(source)
    known_ids, category_ids = result_ids(annotations, class_names)
    summary, results, lines = PredictSummary(kind), [], []
    saver: VideoSaver | None = None
    total = None if kind == "video" else len(files)
    try:
        for name, image, fps in progress_track(_frames(kind, files, summary), f"predicting on {total or 'video'}"):
            start = time.perf_counter()
            found = predict(image)
            summary.times_ms.append((time.perf_counter() - start) * 1000)
            summary.detections += len(found.scores)
            image_id = summary.images if kind == "video" else known_ids.get(Path(name).name, summary.images)
            results += detections_to_coco(image_id, found, category_ids)
            lines.append(json.dumps(_record(name, image_id, image, found, class_names)))
            if save_dir is None:
                continue
            annotated = draw(image, found, class_names, hud="")
            if kind == "video":
                saver = saver or VideoSaver(save_dir / f"{files[0].stem}.mp4", fps, annotated.shape[1::-1])
                saver.write(annotated)
            else:
                _save_image(annotated, save_dir / Path(name).name)
    finally:
        if saver is not None:
            saver.close()
    atomic_write_json(out, results)
    atomic_write_text(lines_out, "".join(line + "\n" for line in lines))
    return summary


def _save_image(image: np.ndarray, target: Path) -> None:
    ok, encoded = cv2.imencode(target.suffix if target.suffix.lower() in IMAGE_SUFFIXES else ".jpg", image)
    if not ok:
        raise UsageError(f"{target}: OpenCV cannot encode this image type")
    atomic_write_bytes(target, encoded.tobytes())

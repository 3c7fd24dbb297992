"""Label images with teachers (``edgedet label``): COCO-trained detectors write a COCO-format dataset for a student.

SOURCE is one of

- an image folder, searched recursively (suffixes as ``edgedet.data.formats.IMAGE_SUFFIXES``);
- a video file: every ``frame_step``-th frame, dropped as a near-duplicate when its 32x32 grey thumbnail differs
  from the last kept frame's by less than ``min_change`` grey levels on average (a camera that sees nothing new);
- a dataset folder in any layout ``edgedet.data.annotations.find_split`` reads (COCO, YOLO, VOC), its ``split``:
  its images, categories and annotations are kept, and ground truth wins: the teachers only add boxes of classes
  the dataset has no category for (it annotates its own classes exhaustively, the teachers' guesses would only add
  noise there).

Each teacher (``edgedet.runtime.peers.load_teacher`` spec: ``PATH.onnx`` or ``PATH.onnx:ADAPTER``) runs at a low
threshold (``TEACHER_CONF``); their boxes are fused by weighted box fusion (``edgedet.label.fusion``) and those with
a fused score of at least ``conf`` are kept. Output, a COCO-format dataset that ``edgedet train --data`` reads::

    OUT/annotations/instances_train.json  # written atomically at the end
    OUT/train/<file_name>                 # hard links to the source images (copies across file systems);
                                          # video frames as <video stem>_<frame index>.jpg
    OUT/labeling.json                     # the settings: a rerun with the same ones resumes, others are refused
    OUT/labeling.jsonl                    # one line per finished image, appended as it goes; a resume reuses them

Annotation convention: a teacher's box carries ``"score"`` (its fused confidence, ``conf``..1); a ground-truth
annotation carries none (read it as 1.0). Categories are the dataset's own (ids kept), then the teachers' classes,
with COCO's id and name where the class is COCO's (``motorbike`` is ``motorcycle``, id 4), else a free id.
Image ids are the dataset's own, else the position in the sorted folder listing, or the frame index + 1.
``info.edgedet_label`` records the settings. Images that cannot be read are left out and counted in one warning
line. Torch-free (numpy, OpenCV, ONNX Runtime).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgedet.data.annotations import find_split, load_coco
from edgedet.data.formats import IMAGE_SUFFIXES, canonical_name, category_for, detect_format
from edgedet.errors import UsageError
from edgedet.io import atomic_write_bytes, atomic_write_json, atomic_write_text, link_or_copy
from edgedet.label.fusion import FUSION_IOU, Ensemble
from edgedet.progress import progress_steps, stderr
from edgedet.runtime.detections import Detections
from edgedet.runtime.peers import load_teacher
from edgedet.runtime.preprocess import read_bgr

TEACHER_CONF = 0.05  # each teacher's own threshold: a box only fusion can lift above ``conf`` must survive it
SPLIT = "train"
SETTINGS, RECORDS = "labeling.json", "labeling.jsonl"
THUMBNAIL = 32


@dataclass
class _Item:
    """One image to label: a file to read and link, or a decoded video frame (None: it could not be decoded)."""

    image_id: int
    file_name: str
    path: Path | None = None
    frame: np.ndarray | None = None
    coco_image: dict[str, Any] = field(default_factory=dict)  # a dataset's own image entry, kept


@dataclass
class LabelSummary:
    """What a labelling run wrote and how fast it went."""

    annotations: Path
    images: int
    labelled: int
    reused: int
    unreadable: int
    duplicates: int
    teacher_boxes: dict[str, int]
    ground_truth: dict[str, int]
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.labelled / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"annotations": str(self.annotations), "images": self.images, "labelled": self.labelled,
                "reused": self.reused, "unreadable": self.unreadable, "duplicates": self.duplicates,
                "images_per_s": self.images_per_s, "seconds": self.seconds,
                **{f"teacher.{name}": n for name, n in self.teacher_boxes.items()},
                **{f"ground_truth.{name}": n for name, n in self.ground_truth.items()}}


def _source_kind(source: Path) -> str:
    """``video``, ``dataset`` or ``images``."""
    if source.is_file():
        return "video"
    if not source.is_dir():
        raise UsageError(f"{source}: no such file or folder (give an image folder, a video or a dataset)")
    try:
        detect_format(source)
    except UsageError:
        return "images"
    return "dataset"


def _folder_items(folder: Path) -> list[_Item]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UsageError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it or below it")
    return [_Item(index + 1, p.relative_to(folder).as_posix(), p) for index, p in enumerate(files)]


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA).astype(np.float32)


def _open_video(video: Path) -> tuple[cv2.VideoCapture, int]:
    """An open capture and its frame count (0 when the container does not say)."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise UsageError(f"{video}: not a video OpenCV can read (and not a folder)")
    return capture, max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))


def _video_items(capture: cv2.VideoCapture, stem: str, frame_step: int, min_change: float, counts: Counter
                 ) -> Iterator[_Item]:
    """Every ``frame_step``-th frame unless it is a near-duplicate of the last one kept (counted in ``counts``)."""
    last, index = None, 0
    try:
        while capture.grab():
            if index % frame_step == 0:
                ok, frame = capture.retrieve()
                name = f"{stem}_{index:06d}.jpg"
                if not ok or frame is None:
                    yield _Item(index + 1, name)
                else:
                    thumbnail = _thumbnail(frame)
                    if last is not None and float(np.abs(thumbnail - last).mean()) < min_change:
                        counts["duplicates"] += 1
                    else:
                        last = thumbnail
                        yield _Item(index + 1, name, frame=frame)
            index += 1
    finally:
        capture.release()


def _read_records(path: Path) -> dict[str, dict[str, Any]]:
    """Finished images by file name; a line cut short by a crash, and all after it, is dropped (and rewritten)."""
    if not path.is_file():
        return {}
    text = path.read_text()
    lines, records = text.splitlines(), {}
    for count, line in enumerate(lines):
        try:
            record = json.loads(line)
            records[record["file_name"]] = record
        except (ValueError, KeyError, TypeError):
            lines = lines[:count]
            break
    if len(records) < len(text.splitlines()) or not text.endswith("\n"):  # the next line must start on its own
        atomic_write_text(path, "".join(f"{line}\n" for line in lines))
    return records


def _open_output(out: Path, settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The finished images of an earlier run with the same settings; a folder holding anything else is refused."""
    state = out / SETTINGS
    if out.exists() and any(out.iterdir()):
        if not state.is_file():
            raise UsageError(f"{out} already exists and holds other files: choose another --out or delete it")
        if json.loads(state.read_text()) != settings:
            raise UsageError(f"{out} holds a labelling with other settings ({state}): rerun with the same ones to "
                             "resume it, or choose another --out")
        return _read_records(out / RECORDS)
    atomic_write_json(state, settings)
    return {}


def _categories(ground_truth: list[dict[str, Any]], taught: list[str]) -> list[dict[str, Any]]:
    """The dataset's categories, then one per taught class: COCO's id where free, else the next free one."""
    categories = [dict(c) for c in ground_truth]
    for index, name in enumerate(taught):
        category = category_for(name, index)
        taken = {c["id"] for c in categories}
        if category["id"] in taken:
            category["id"] = max(taken) + 1
        categories.append(category)
    return categories


def _new_classes(names: list[str], known: set[str]) -> list[str]:
    """``names`` less those the dataset annotates (ground truth wins), each once; nothing left is an error."""
    taught, seen = [], set(known)
    for name in names:
        if canonical_name(name) not in seen:
            seen.add(canonical_name(name))
            taught.append(name)
    if not taught:
        raise UsageError("the dataset already annotates every class the teachers would add (ground truth wins): "
                         "give --classes it lacks, or an image folder")
    return taught


def _write_image(item: _Item, image: np.ndarray, target: Path) -> None:
    if item.path is None:
        jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
        atomic_write_bytes(target, jpeg.tobytes())
    else:
        target.unlink(missing_ok=True)  # a link left by an interrupted run
        link_or_copy(item.path, target)


def _record(item: _Item, image: np.ndarray | None, found: Detections) -> dict[str, Any]:
    if image is None:
        return {"file_name": item.file_name, "unreadable": True}
    height, width = image.shape[:2]
    boxes = [[round(float(x1), 2), round(float(y1), 2), round(float(x2 - x1), 2), round(float(y2 - y1), 2),
              round(float(score), 4), int(label)]
             for (x1, y1, x2, y2), score, label in zip(found.boxes_xyxy, found.scores, found.labels)]
    return {"file_name": item.file_name, "width": width, "height": height, "boxes": boxes}


def _coco_json(items: list[_Item], records: dict[str, dict[str, Any]], base: dict[str, Any],
               ground_truth: list[dict[str, Any]], taught_ids: list[int]) -> dict[str, Any]:
    """The output annotation file: readable images, their ground truth as it was, the teachers' boxes with scores."""
    images = [item.coco_image | {"id": item.image_id, "file_name": item.file_name,
                                 "width": records[item.file_name]["width"],
                                 "height": records[item.file_name]["height"]}
              for item in items if not records[item.file_name].get("unreadable")]
    kept = {image["id"] for image in images}
    annotations = [a for a in ground_truth if a["image_id"] in kept]
    next_id = max((a["id"] for a in annotations), default=0) + 1
    for image in images:
        for x, y, w, h, score, label in records[image["file_name"]]["boxes"]:
            annotations.append({"id": next_id, "image_id": image["id"], "category_id": taught_ids[label],
                                "bbox": [x, y, w, h], "area": round(w * h, 2), "iscrowd": 0, "score": score})
            next_id += 1
    return base | {"images": images, "annotations": annotations}


def _items(kind: str, source: Path, dataset: dict[str, Any], image_dir: Path, frame_step: int, min_change: float,
           counts: Counter) -> tuple[Iterable[_Item], int]:
    """The images to label, in a stable order, and how many there will be (at most, for a video)."""
    if kind == "video":
        capture, frames = _open_video(source)
        return _video_items(capture, source.stem, frame_step, min_change, counts), max(1, -(-frames // frame_step))
    if kind == "images":
        items = _folder_items(source)
    else:
        items = [_Item(image["id"], image["file_name"], image_dir / image["file_name"], coco_image=image)
                 for image in sorted(dataset["images"], key=lambda image: image["id"])]
    return items, len(items)


def _label_items(items: Iterable[_Item], total: int, max_images: int | None, records: dict[str, dict[str, Any]],
                 out: Path, label: Callable[[np.ndarray], Detections], counts: Counter) -> list[_Item]:
    """Label the items not in ``records`` (adding them there and to the log as each finishes); the items visited."""
    visited: list[_Item] = []
    with progress_steps(f"labelling {total} images", total) as advance_to, (out / RECORDS).open("a") as log:
        for item in items:
            if max_images is not None and len(visited) >= max_images:
                break
            visited.append(item)
            if item.file_name in records:
                counts["reused"] += 1
            else:
                image = read_bgr(item.path) if item.path is not None else item.frame
                found = Detections.empty() if image is None else label(image)
                if image is not None:
                    _write_image(item, image, out / SPLIT / item.file_name)
                records[item.file_name] = _record(item, image, found)
                log.write(json.dumps(records[item.file_name]) + "\n")
                log.flush()
                counts["labelled"] += 1
            advance_to(len(visited))
    return visited


def _check_arguments(teachers: Sequence[str | Path], conf: float, frame_step: int,
                     weights: Sequence[float] | None) -> None:
    if not teachers:
        raise UsageError("give at least one teacher (--teacher PATH.onnx)")
    if not 0 < conf <= 1:
        raise UsageError(f"--conf {conf}: give a score threshold in (0, 1]")
    if frame_step < 1:
        raise UsageError(f"--frame-step {frame_step}: give 1 (every frame) or more")
    if weights is not None and len(weights) != len(teachers):
        raise UsageError(f"{len(weights)} teacher weights for {len(teachers)} teachers: give one per teacher")


def label_source(source: Path, teachers: Sequence[str | Path], out: Path, *, classes: list[str] | None = None,
                 conf: float = 0.3, frame_step: int = 10, min_change: float = 1.5, split: str = "train",
                 iou: float = FUSION_IOU, weights: Sequence[float] | None = None, max_images: int | None = None,
                 threads: int = 1) -> LabelSummary:
    """Label every image (or sampled video frame) of ``source`` with the fused ``teachers`` into the COCO-format
    folder ``out``, resuming an earlier run with the same settings. ``max_images`` stops after the first N
    (a later run with more continues)."""
    source, out = Path(source), Path(out)
    _check_arguments(teachers, conf, frame_step, weights)
    kind = _source_kind(source)
    if kind == "images" and out.resolve().is_relative_to(source.resolve()):
        raise UsageError(f"--out {out} is inside the image folder {source}: choose a folder outside it")
    settings = {"source": str(source.resolve()), "kind": kind, "split": split if kind == "dataset" else None,
                "teachers": [str(t) for t in teachers], "classes": list(classes) if classes else None, "conf": conf,
                "iou": iou, "weights": list(weights) if weights else None,
                "frame_step": frame_step if kind == "video" else None,
                "min_change": min_change if kind == "video" else None}
    dataset: dict[str, Any] = {"info": {}, "licenses": [], "images": [], "annotations": [], "categories": []}
    image_dir = source
    if kind == "dataset":
        annotation_file, image_dir = find_split(source, split)
        dataset = dataset | load_coco(annotation_file).dataset
    truth_categories = sorted(dataset["categories"], key=lambda c: c["id"])
    known = {canonical_name(c["name"]) for c in truth_categories}
    wanted = _new_classes(classes, known) if classes else None
    loaded = [load_teacher(t, class_names=wanted, conf=min(conf, TEACHER_CONF), threads=threads) for t in teachers]
    taught = wanted or _new_classes([name for teacher in loaded for name in teacher.class_names], known)
    categories = _categories(truth_categories, taught)
    counts: Counter = Counter()
    items, total = _items(kind, source, dataset, image_dir, frame_step, min_change, counts)
    records = _open_output(out, settings)
    label = Ensemble(loaded, class_names=taught, conf=conf, iou=iou, weights=weights)
    started = time.perf_counter()
    visited = _label_items(items, min(total, max_images or total), max_images, records, out, label, counts)
    seconds = time.perf_counter() - started
    unreadable = [item.file_name for item in visited if records[item.file_name].get("unreadable")]
    if unreadable:
        stderr.print(f"warning: skipped {len(unreadable)} of {len(visited)} images that could not be read "
                     f"(first: {unreadable[0]})", markup=False, highlight=False, soft_wrap=True)
    base = {"info": dataset["info"] | {"edgedet_label": settings}, "licenses": dataset["licenses"],
            "categories": categories}
    taught_ids = [c["id"] for c in categories[len(truth_categories):]]
    data = _coco_json(visited, records, base, dataset["annotations"], taught_ids)
    annotation_path = atomic_write_json(out / "annotations" / f"instances_{SPLIT}.json", data)
    return _summary(annotation_path, data, categories, taught_ids, truth_categories, counts, len(unreadable), seconds)


def _summary(annotation_path: Path, data: dict[str, Any], categories: list[dict[str, Any]], taught_ids: list[int],
             truth_categories: list[dict[str, Any]], counts: Counter, unreadable: int, seconds: float
             ) -> LabelSummary:
    names = {c["id"]: c["name"] for c in categories}
    scored = Counter(a["category_id"] for a in data["annotations"] if "score" in a)
    truth = Counter(a["category_id"] for a in data["annotations"] if "score" not in a)
    return LabelSummary(annotation_path, len(data["images"]), counts["labelled"], counts["reused"], unreadable,
                        counts["duplicates"], {names[i]: scored[i] for i in taught_ids},
                        {c["name"]: truth[c["id"]] for c in truth_categories}, seconds)

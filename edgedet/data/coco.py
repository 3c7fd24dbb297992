"""COCO-format detection data: a split's annotation file and images as a torch ``Dataset``.

Layout (what a COCO 2017 download unpacks to; ``edgedet data synthetic`` and ``coco-subset`` write the same)::

    ROOT/annotations/instances_<split>.json     # COCO JSON: images, annotations (bbox = x, y, w, h), categories
    ROOT/<split>/<file_name>                    # the images named in it

A split may be named in short: ``train`` finds ``instances_train2017.json`` when that is the only match.

``dataset[i]`` is ``(image, target)``: ``image`` a ``tv_tensors.Image`` uint8 (3, H, W) RGB (grey, palette and RGBA
files become RGB); after ``edgedet.data.transforms`` H = W = imgsz. ``target``::

    boxes        tv_tensors.BoundingBoxes (N, 4) float32 XYXY in image pixels, canvas_size (H, W)
    labels       int64 (N,): 0..K-1, index into dataset.class_names / dataset.category_ids
    scores       float32 (N,): how sure the labeller was, 0..1: an annotation's ``score`` (teacher labels,
                 ``edgedet label``), 1.0 for ground truth; the loss takes it as a soft target and box weight
    crowd_boxes  tv_tensors.BoundingBoxes (M, 4): iscrowd=1 regions; not targets, predictions inside are ignored
    annotated    bool (K,): the classes this image's dataset annotates; a class it does not annotate is unknown
                 there, not background (several datasets in one run, ``UnionDetection``)
    image_id     int, the COCO image id
    orig_size    (h, w) of the image file
    scale        float: model pixels per original pixel (the letterbox scale; 1.0 without transforms),
                 so a predicted box maps back to the original image as box / scale

Boxes are clipped to the image and those under 1 px wide or high are dropped at load. Images without annotations
are kept as negatives. Image files that are missing or cannot be opened are found once, at construction, skipped,
and counted in one warning line, so a DataLoader worker never meets them.
During transforms crowd boxes travel in ``boxes`` with label -1 (``CROWD``): every box-aware transform and
``SanitizeBoundingBoxes`` keeps them aligned with the other boxes, and ``__getitem__`` splits them out afterwards.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from pycocotools.coco import COCO
from torchvision import tv_tensors

from edgedet.data.annotations import annotated_classes, find_split, load_coco, select_categories
from edgedet.data.formats import canonical_name, category_for, detect_format
from edgedet.errors import EdgedetError, UsageError
from edgedet.progress import progress_track, stderr

CROWD = -1  # label of crowd boxes while transforms run
Sample = tuple[tv_tensors.Image, dict[str, Any]]


@dataclass(frozen=True)
class _Record:
    image_id: int
    path: Path
    boxes: np.ndarray  # (N, 4) float32 xyxy, clipped, at least 1 px each way
    labels: np.ndarray  # (N,) int64, CROWD for crowd regions
    scores: np.ndarray  # (N,) float32, 1.0 for ground truth


def _check_image(path: Path) -> tuple[int, int] | None:
    """(height, width) from the file header, or None when it is missing or not an image (cheap: no decoding)."""
    try:
        with Image.open(path) as image:
            image.verify()
            return image.height, image.width
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def _xyxy(anns: list[dict], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """COCO xywh -> xyxy clipped to the image; the mask of boxes at least 1 px wide and high."""
    xywh = np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
    keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    return boxes, keep


def _records(coco: COCO, image_dir: Path, category_ids: list[int | None]) -> list[_Record]:
    """One record per readable image; unreadable ones are counted in one warning line. A class whose category id
    is None is not in this split."""
    label_of = {cat: label for label, cat in enumerate(category_ids) if cat is not None}
    records, bad = [], []
    image_ids = sorted(coco.getImgIds())
    for image_id in progress_track(image_ids, "checking images"):
        path = image_dir / coco.imgs[image_id]["file_name"]
        size = _check_image(path)
        if size is None:
            bad.append(path)
            continue
        anns = [a for a in coco.imgToAnns[image_id] if a["category_id"] in label_of]
        boxes, keep = _xyxy(anns, *size)
        labels = np.array([CROWD if a.get("iscrowd") else label_of[a["category_id"]] for a in anns], np.int64)
        scores = np.array([a.get("score", 1.0) for a in anns], np.float32)
        records.append(_Record(image_id, path, boxes[keep], labels[keep], scores[keep]))
    if bad:
        stderr.print(f"warning: skipped {len(bad)} of {len(image_ids)} images that could not be read "
                     f"(first: {bad[0]})", markup=False, highlight=False, soft_wrap=True)
    return records


class CocoDetection(torch.utils.data.Dataset):
    """A COCO split as ``(image, target)`` samples (see the module docstring), optionally restricted to some classes.

    ``classes`` (names, e.g. ``["person", "car"]``) keeps those categories only, labelled 0..K-1 in that order;
    with ``partial`` the split may lack some of them (their ``category_ids`` entry is None, ``annotated`` False).
    ``category_ids[label]`` is the original COCO id and ``coco`` the split's pycocotools object, for evaluation.
    """

    def __init__(self, root: Path, split: str, *, classes: list[str] | None = None,
                 transforms: Callable[[tv_tensors.Image, dict[str, Any]], Sample] | None = None,
                 partial: bool = False) -> None:
        self.ann_file, self.image_dir = find_split(root, split)
        self.coco = load_coco(self.ann_file)
        self.annotated = annotated_classes(self.coco, classes) if partial and classes else None
        if self.annotated is not None:
            present = iter(select_categories(self.coco, [c for c, a in zip(classes, self.annotated) if a])[0])
            self.category_ids, self.class_names = [next(present) if a else None for a in self.annotated], classes
        else:
            self.category_ids, self.class_names = select_categories(self.coco, classes)
            self.annotated = [True] * len(self.class_names)
        self.transforms = transforms
        self._records = _records(self.coco, self.image_dir, self.category_ids)
        self.image_ids = [r.image_id for r in self._records]

    def __len__(self) -> int:
        return len(self._records)

    def with_transforms(self, transforms: Callable[[tv_tensors.Image, dict[str, Any]], Sample] | None
                        ) -> "CocoDetection":
        """The same split and classes under other transforms, without reading the annotations again."""
        other = copy.copy(self)
        other.transforms = transforms
        return other

    def __getitem__(self, index: int) -> Sample:
        record = self._records[index]
        image = self._read(record.path)
        height, width = image.shape[-2:]
        target = {
            "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(record.boxes), format="XYXY",
                                              canvas_size=(height, width)),
            "labels": torch.from_numpy(record.labels),
            "scores": torch.from_numpy(record.scores),
            "annotated": torch.tensor(self.annotated),
            "image_id": record.image_id,
            "orig_size": (height, width),
            "scale": 1.0,
        }
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, _split_crowd(target)

    def _read(self, path: Path) -> tv_tensors.Image:
        try:
            with Image.open(path) as image:
                rgb = np.asarray(image.convert("RGB"))  # (H, W, 3) uint8; grey, palette, RGBA become RGB
        except (OSError, SyntaxError, ValueError) as err:
            raise EdgedetError(f"could not decode {path} ({err}): replace the file or remove it from "
                               f"{self.ann_file}") from err
        return tv_tensors.Image(torch.from_numpy(rgb.copy()).permute(2, 0, 1))  # (3, H, W)


class UnionDetection(torch.utils.data.ConcatDataset):
    """Several datasets' splits as one, classes matched by name (``--data A --data B``).

    The classes are ``classes`` when given (each must be annotated by at least one dataset), else every dataset's
    classes in order of first appearance. Each sample's ``annotated`` says which of them its own dataset labels,
    so merging a person-only set with COCO does not teach that COCO's chairs are background in the person set.
    ``repeats`` (one per root) lists each dataset's images that many times, so a small hand-labelled set keeps its
    weight beside a large teacher-labelled one (mmdetection's RepeatDataset).
    """

    def __init__(self, roots: list[Path], split: str, *, classes: list[str] | None = None,
                 transforms: Callable[[tv_tensors.Image, dict[str, Any]], Sample] | None = None,
                 repeats: list[int] | None = None) -> None:
        names = classes or union_class_names(roots, split)
        parts = [CocoDetection(root, split, classes=names, transforms=transforms, partial=True) for root in roots]
        nobody = [name for index, name in enumerate(names) if not any(p.annotated[index] for p in parts)]
        if nobody:
            raise UsageError(f"no dataset annotates {', '.join(nobody)}: check --classes against the datasets' "
                             "class names (`edgedet data stats DIR`)")
        self.repeats = repeats or [1] * len(parts)
        super().__init__(self._repeated(parts))
        self.parts, self.class_names = parts, list(names)
        self.category_ids = [next((p.category_ids[i] for p in parts if p.category_ids[i] is not None),
                                  category_for(name, i)["id"]) for i, name in enumerate(names)]

    def with_transforms(self, transforms: Callable[[tv_tensors.Image, dict[str, Any]], Sample] | None
                        ) -> "UnionDetection":
        """The same splits and classes under other transforms, without reading the annotations again."""
        other = copy.copy(self)
        other.parts = [part.with_transforms(transforms) for part in self.parts]
        other.datasets = other._repeated(other.parts)
        return other

    def _repeated(self, parts: list[CocoDetection]) -> list[CocoDetection]:
        return [part for part, times in zip(parts, self.repeats) for _ in range(times)]


def training_set(roots: list[Path], classes: list[str] | None, transforms: Any, repeats: list[int] | None = None
                 ) -> CocoDetection | UnionDetection:
    """One dataset's train split, or the union of several (classes matched by name, each dataset listed
    ``repeats[i]`` times); never empty."""
    dataset = (CocoDetection(roots[0], "train", classes=classes, transforms=transforms)
               if len(roots) == 1 and not repeats
               else UnionDetection(roots, "train", classes=classes, transforms=transforms, repeats=repeats))
    if len(dataset) == 0:
        raise UsageError(f"{', '.join(map(str, roots))}: the training split has no readable images")
    return dataset


def union_class_names(roots: list[Path], split: str) -> list[str]:
    """Every dataset's class names by first appearance, matched by ``canonical_name``: ``Person`` in one dataset
    and ``person`` in another are one class."""
    names: dict[str, str] = {}
    for root in roots:
        coco = load_coco(find_split(root, split)[0])
        for cat in sorted(coco.getCatIds()):
            name = coco.cats[cat]["name"]
            names.setdefault(canonical_name(name), name)
    return list(names.values())


def _split_crowd(target: dict[str, Any]) -> dict[str, Any]:
    """Move the boxes labelled CROWD from ``boxes``/``labels`` to ``crowd_boxes``."""
    boxes, labels = target["boxes"], target["labels"]
    crowd = labels == CROWD
    return target | {"boxes": tv_tensors.wrap(boxes[~crowd], like=boxes), "labels": labels[~crowd],
                     "scores": target["scores"][~crowd], "crowd_boxes": tv_tensors.wrap(boxes[crowd], like=boxes)}


def collate(batch: list[Sample]) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """DataLoader ``collate_fn``: images stacked to (B, 3, S, S) in their dtype (uint8), targets a list of dicts
    with plain tensors (tv_tensor subclasses do not survive every op a loss applies)."""
    images, targets = zip(*batch)
    if len({tuple(image.shape) for image in images}) > 1:
        raise UsageError("collate needs images of one size: give the dataset eval_transforms(imgsz) or "
                         "train_transforms(imgsz) from edgedet.data.transforms")
    plain = [{k: v.as_subclass(torch.Tensor) if isinstance(v, torch.Tensor) else v for k, v in t.items()}
             for t in targets]
    return torch.stack([image.as_subclass(torch.Tensor) for image in images]), plain  # (B, 3, S, S)


def split_stats(root: Path, split: str) -> dict[str, Any]:
    """Counts from the annotation file alone (no image is opened): images, annotations, crowd regions, images
    without any annotation, and per class the objects (crowd regions aside) and the images showing them; for a
    YOLO or VOC set also what its conversion skipped, by reason, and the images that had no label file."""
    ann_file, _ = find_split(root, split)
    data = json.loads(ann_file.read_text())
    converted = data.get("info", {}).get("edgedet_converted", {})
    anns = data.get("annotations", [])
    objects = [a for a in anns if not a.get("iscrowd")]
    per_class = Counter(a["category_id"] for a in objects)
    images_per_class = Counter(cat for cat, _ in {(a["category_id"], a["image_id"]) for a in objects})
    classes = [{"id": c["id"], "name": c["name"], "annotations": per_class[c["id"]],
                "images": images_per_class[c["id"]]} for c in sorted(data.get("categories", []), key=lambda c: c["id"])]
    return {
        "format": detect_format(Path(root)),
        "annotation_file": str(ann_file),
        "skipped": converted.get("skipped", {}),
        "images_without_label_file": converted.get("images_without_label_file", 0),
        "images": len(data.get("images", [])),
        "annotations": len(anns),
        "crowd": sum(1 for a in anns if a.get("iscrowd")),
        "negatives": len({i["id"] for i in data.get("images", [])} - {a["image_id"] for a in anns}),
        "classes": classes,
    }

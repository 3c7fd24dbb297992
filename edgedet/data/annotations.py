"""COCO annotation files, torch-free: finding a split's (in any layout ``edgedet.data.formats`` reads), loading it
quietly and resolving class names to category ids by name.

Shared by the training dataset, subset carving and evaluation (which must run on devices without torch).
"""

from __future__ import annotations

import contextlib
import difflib
import io
from collections import Counter
from pathlib import Path

from pycocotools.coco import COCO

from edgedet.data.formats import canonical_name, converted_split, detect_format
from edgedet.errors import UsageError


def load_coco(ann_file: Path) -> COCO:
    """pycocotools' COCO object, without its prints on stdout (which carries our tables)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(ann_file))
    except (ValueError, KeyError) as err:
        raise UsageError(f"{ann_file} is not a COCO annotation file ({err!r}): check or re-download it") from err


def select_categories(coco: COCO, classes: list[str] | None) -> tuple[list[int], list[str]]:
    """(category ids, names) in label order: the given class names in their order, else every category by id.

    Names match by ``canonical_name`` (``Person``, ``tvmonitor`` find ``person``, ``tv``)."""
    ids = sorted(coco.getCatIds())
    if not classes:
        return ids, [coco.cats[i]["name"] for i in ids]
    by_key = {canonical_name(coco.cats[i]["name"]): i for i in ids}
    for name, count in Counter(canonical_name(c) for c in classes).items():
        if name not in by_key:
            close = difflib.get_close_matches(name, by_key, n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise UsageError(f"unknown class '{name}'.{hint} Known: {', '.join(coco.cats[i]['name'] for i in ids)}")
        if count > 1:
            raise UsageError(f"class '{name}' given {count} times: list each class once")
    return [by_key[canonical_name(name)] for name in classes], list(classes)


def annotated_classes(coco: COCO, classes: list[str]) -> list[bool]:
    """Per class of ``classes``: does this split annotate it (by name)? A class it does not annotate is unknown
    there, not background."""
    keys = {canonical_name(c["name"]) for c in coco.loadCats(coco.getCatIds())}
    return [canonical_name(name) in keys for name in classes]


def find_split(root: Path, split: str) -> tuple[Path, Path]:
    """``(annotation file, image folder)`` of a split; ``train`` resolves to ``train2017`` when that is what exists.
    YOLO and VOC folders are converted to COCO JSON on first use (``edgedet.data.formats``)."""
    root = Path(root)
    if detect_format(root) != "coco":
        return converted_split(root, split)
    ann_dir = root / "annotations"
    exact = ann_dir / f"instances_{split}.json"
    matches = [exact] if exact.is_file() else sorted(ann_dir.glob(f"instances_*{split}*.json"))
    if len(matches) != 1:
        found = ", ".join(sorted(p.name for p in ann_dir.glob("instances_*.json"))) or "none"
        raise UsageError(f"{'several' if matches else 'no'} annotation files for split '{split}' in {ann_dir} "
                         f"(found: {found}); expected ROOT/annotations/instances_<split>.json and ROOT/<split>/")
    images = root / matches[0].stem.removeprefix("instances_")
    if not images.is_dir():
        raise UsageError(f"no image folder {images} for {matches[0]}: COCO layout keeps a split's images in "
                         "ROOT/<split>/")
    return matches[0], images

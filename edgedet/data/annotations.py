"""COCO annotation files, torch-free: loading them quietly and resolving class names to category ids.

Shared by the training dataset, subset carving and evaluation (which must run on devices without torch).
"""

from __future__ import annotations

import contextlib
import difflib
import io
from collections import Counter
from pathlib import Path

from pycocotools.coco import COCO

from edgedet.errors import UsageError


def load_coco(ann_file: Path) -> COCO:
    """pycocotools' COCO object, without its prints on stdout (which carries our tables)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(ann_file))
    except (ValueError, KeyError) as err:
        raise UsageError(f"{ann_file} is not a COCO annotation file ({err!r}): check or re-download it") from err


def select_categories(coco: COCO, classes: list[str] | None) -> tuple[list[int], list[str]]:
    """(category ids, names) in label order: the given class names in their order, else every category by id."""
    by_name = {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())}
    if not classes:
        return sorted(by_name.values()), [coco.cats[i]["name"] for i in sorted(by_name.values())]
    for name, count in Counter(classes).items():
        if name not in by_name:
            close = difflib.get_close_matches(name, by_name, n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise UsageError(f"unknown class '{name}'.{hint} Known: {', '.join(by_name)}")
        if count > 1:
            raise UsageError(f"class '{name}' given {count} times: list each class once")
    return [by_name[name] for name in classes], list(classes)


def find_split(root: Path, split: str) -> tuple[Path, Path]:
    """``(annotation file, image folder)`` of a split; ``train`` resolves to ``train2017`` when that is what exists."""
    root = Path(root)
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

"""Carve a small COCO-format folder out of a full COCO download: some classes, some images.

Writes the layout ``CocoDetection`` reads (see ``edgedet.data.coco``)::

    OUT/annotations/instances_<split>.json   # only the chosen categories, with their original COCO ids
    OUT/<split>/<file_name>                  # hard links to the source images (copies across file systems)

With classes, the images are those showing at least one of them; ``max_images`` of those are drawn at random
(seeded), then kept in id order. ``info.edgedet_subset`` records the source and settings; a folder made with the same
ones is reused. The folder is built beside ``OUT`` and renamed into place, so it is never half written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgedet.data.annotations import load_coco, select_categories
from edgedet.data.annotations import find_split
from edgedet.errors import UsageError
from edgedet.io import atomic_folder, link_or_copy
from edgedet.progress import progress_track


def carve_coco_subset(coco_root: Path, split: str, out: Path, *, classes: list[str] | None, max_images: int | None,
                      seed: int = 0) -> Path:
    """Write ``out`` with the chosen classes' annotations and up to ``max_images`` images of ``split``."""
    if max_images is not None and max_images < 1:
        raise UsageError(f"--max-images {max_images}: give at least 1, or leave it out for every image")
    ann_file, image_dir = find_split(coco_root, split)
    out = Path(out)
    settings = {"source": str(ann_file.resolve()), "classes": classes or None, "max_images": max_images, "seed": seed}
    if _reuse(out, settings):
        return out
    coco = load_coco(ann_file)
    category_ids, _ = select_categories(coco, classes)
    image_ids = sorted(set().union(*(coco.catToImgs[c] for c in category_ids)) if classes else coco.getImgIds())
    if not image_ids:
        raise UsageError(f"no image in {ann_file} shows {', '.join(classes or [])}: choose other --classes")
    if max_images is not None and max_images < len(image_ids):
        image_ids = sorted(np.random.default_rng(seed).choice(image_ids, max_images, replace=False).tolist())
    data = {
        "info": coco.dataset.get("info", {}) | {"edgedet_subset": settings},
        "licenses": coco.dataset.get("licenses", []),
        "images": coco.loadImgs(image_ids),
        "annotations": coco.loadAnns(coco.getAnnIds(imgIds=image_ids, catIds=category_ids, iscrowd=None)),
        "categories": coco.loadCats(category_ids),
    }
    with atomic_folder(out) as tmp:
        split_name = image_dir.name
        for image in progress_track(data["images"], f"linking {len(image_ids)} images"):
            source = image_dir / image["file_name"]
            if not source.is_file():
                raise UsageError(f"image {source} named in the annotations is missing: complete the COCO download")
            link_or_copy(source, tmp / split_name / image["file_name"])
        (tmp / "annotations").mkdir()
        (tmp / "annotations" / ann_file.name).write_text(json.dumps(data) + "\n")
    return out


def _reuse(out: Path, settings: dict[str, Any]) -> bool:
    """True when ``out`` holds a subset carved with these settings; a clear error when it holds something else."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return False
    for ann_file in (out / "annotations").glob("instances_*.json"):
        try:
            if json.loads(ann_file.read_text())["info"]["edgedet_subset"] == settings:
                return True
        except (OSError, ValueError, KeyError, TypeError):
            continue
    raise UsageError(f"{out} already exists and holds something else: choose another --out or delete it")

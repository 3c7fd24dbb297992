"""A deterministic synthetic detection set: filled circles, squares and triangles on textured backgrounds.

For tests and the offline demo: made in seconds, no download, and hard enough that a detector must learn (noise,
gradient and stripe backgrounds; random colours, sizes 16-100 px, rotations; 1-5 objects that never overlap).
Layout, a COCO split per folder as ``CocoDetection`` reads it::

    OUT/annotations/instances_train.json    # COCO JSON; categories 1 circle, 2 square, 3 triangle
    OUT/annotations/instances_val.json
    OUT/train/000001.jpg ...                # JPEG quality 95 (4:4:4), sides between 3/4 of size and size
    OUT/val/000001.jpg ...

Each annotation's ``bbox`` is tight to the drawn pixels (the extent of the shape's mask), ``area`` is the mask's
pixel count and ``color`` the fill colour (RGB). ``info.edgedet_synthetic`` records the settings: the same settings
give byte-identical files, and an existing folder with the same settings is reused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgedet.errors import UsageError

CLASSES = ("circle", "square", "triangle")
MIN_SIDE, MAX_SIDE = 16, 100  # object size range in pixels
MIN_CONTRAST = 120  # least L1 distance (RGB) between an object's colour and the background under it


def make_synthetic(out: Path, *, train_images: int = 240, val_images: int = 60, size: int = 256,
                   seed: int = 0) -> Path:
    """Write the set to ``out`` (built in a temporary folder beside it, then renamed); reuse it if already made."""
    if min(train_images, val_images) < 1 or size < 2 * MAX_SIDE:
        raise UsageError(f"need at least 1 train and 1 val image and --size >= {2 * MAX_SIDE} (got {train_images}, "
                         f"{val_images}, {size})")
    out = Path(out)
    settings = {"train_images": train_images, "val_images": val_images, "size": size, "seed": seed}
    if _reuse(out, settings):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        for index, (split, count) in enumerate((("train", train_images), ("val", val_images))):
            _write_split(tmp, split, count, size, [seed, index], settings)
        os.replace(tmp, out)  # atomic; also replaces an empty folder
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if _reuse(out, settings):  # a concurrent run finished first
            return out
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _reuse(out: Path, settings: dict[str, int]) -> bool:
    """True when ``out`` holds a set made with these settings; a clear error when it holds something else."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return False
    try:
        info = json.loads((out / "annotations" / "instances_train.json").read_text())["info"]["edgedet_synthetic"]
    except (OSError, ValueError, KeyError, TypeError):
        info = None
    if info == settings:
        return True
    raise UsageError(f"{out} already exists and is not a synthetic set made with {settings}: choose another --out "
                     "or delete it")


def _write_split(root: Path, split: str, count: int, size: int, seed: list[int], settings: dict[str, int]) -> None:
    (root / split).mkdir(parents=True)
    images, annotations = [], []
    for image_id in range(1, count + 1):
        rng = np.random.default_rng(seed + [image_id])  # one stream per image: no image depends on another
        image, objects = _draw_image(rng, size)
        name = f"{image_id:06d}.jpg"
        params = [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
        jpeg = cv2.imencode(".jpg", image[:, :, ::-1], params)[1]  # 4:4:4 keeps colour edges sharp
        (root / split / name).write_bytes(jpeg.tobytes())
        images.append({"id": image_id, "file_name": name, "height": image.shape[0], "width": image.shape[1]})
        for obj in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "iscrowd": 0, **obj})
    coco = {
        "info": {"description": "edgedet synthetic shapes", "edgedet_synthetic": settings},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASSES)],
    }
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco, indent=1) + "\n")


def _draw_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """(H, W, 3) uint8 RGB image and its objects' annotation fields (category_id, bbox, area, color)."""
    height, width = (int(v) for v in rng.integers(size * 3 // 4, size + 1, 2))
    image = _background(rng, height, width)
    taken = np.zeros((height, width), bool)
    objects = []
    for _ in range(int(rng.integers(1, 6))):
        for _attempt in range(30):
            category = int(rng.integers(len(CLASSES)))
            mask = _shape_mask(rng, CLASSES[category], height, width)
            ys, xs = np.nonzero(mask)
            x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            if not taken[max(0, y1 - 2):y2 + 2, max(0, x1 - 2):x2 + 2].any():
                break
        else:
            continue  # no free place left for another object
        colour = _contrasting_colour(rng, image[mask].mean(axis=0))
        image[mask] = colour
        taken[y1:y2, x1:x2] = True
        objects.append({"category_id": category + 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "area": int(mask.sum()),
                        "color": [int(c) for c in colour]})
    return image, objects


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Noise blotches, a two-colour gradient or stripes, plus pixel noise: texture a detector has to look past."""
    kind = int(rng.integers(3))
    a, b = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    if kind == 0:
        coarse = rng.uniform(0, 1, (8, 8, 3)).astype(np.float32)
        t = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)  # (H, W, 3)
    else:
        angle = rng.uniform(0, np.pi)
        along = (np.arange(width, dtype=np.float32) * np.cos(angle))[None, :, None] \
            + (np.arange(height, dtype=np.float32) * np.sin(angle))[:, None, None]  # (H, W, 1)
        ramp = (along - along.min()) / (along.max() - along.min())
        t = ramp if kind == 1 else 0.5 + 0.5 * np.sin(along * np.float32(2 * np.pi / rng.uniform(8, 40)))
    noise = rng.standard_normal((height, width, 1), dtype=np.float32) * np.float32(rng.uniform(5, 25))  # grain
    return np.clip(a + (b - a) * np.clip(t, 0, 1) + noise, 0, 255).astype(np.uint8)


def _shape_mask(rng: np.random.Generator, kind: str, height: int, width: int) -> np.ndarray:
    """Boolean (H, W) mask of one filled shape inscribed in a circle of diameter 16-100 px, placed and rotated at
    random."""
    side = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
    cx, cy = (float(rng.uniform(side / 2 + 1, extent - side / 2 - 1)) for extent in (width, height))
    mask = np.zeros((height, width), np.uint8)
    if kind == "circle":
        cv2.circle(mask, (round(cx), round(cy)), side // 2, 1, thickness=-1)
    else:
        corners = 4 if kind == "square" else 3
        angles = rng.uniform(0, 2 * np.pi) + np.arange(corners) * 2 * np.pi / corners
        points = np.stack([cx + side / 2 * np.cos(angles), cy + side / 2 * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A random colour at least MIN_CONTRAST away from the mean background colour it covers."""
    for _ in range(50):
        colour = rng.integers(0, 256, 3)
        if np.abs(colour - under).sum() >= MIN_CONTRAST:
            return colour.astype(np.uint8)
    return np.where(under < 128, 255, 0).astype(np.uint8)  # the opposite corner of the RGB cube

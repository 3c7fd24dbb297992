"""Letterbox: the one input geometry of training, evaluation, export and the camera loop.

Resize so the longer side equals ``imgsz`` (aspect kept, bilinear), pad right and bottom with 114 to a square.
A box in model pixels maps back to the original image as ``box / scale``. The model takes float RGB in 0..255,
NCHW, and normalises inside its graph.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

PAD_VALUE = 114
READ_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION  # COCO boxes refer to the stored pixels, not EXIF


def read_bgr(path: Path) -> np.ndarray | None:
    """An image file as (H, W, 3) uint8 BGR, as deployment reads it (grey becomes 3 channels); None if unreadable."""
    return cv2.imread(str(path), READ_FLAGS)


def letterbox_size(height: int, width: int, imgsz: int) -> tuple[float, int, int]:
    """(scale, new_h, new_w) of an image fitted into ``imgsz``: the one rounding every letterbox uses, so that
    training, export and every runtime resize to the same pixels."""
    scale = imgsz / max(height, width)
    return scale, min(imgsz, round(height * scale)), min(imgsz, round(width * scale))


def letterbox(image_bgr: np.ndarray, imgsz: int) -> tuple[np.ndarray, float]:
    """(H, W, 3) uint8 BGR image -> ((1, 3, imgsz, imgsz) float32 RGB 0..255, scale)."""
    scale, new_h, new_w = letterbox_size(*image_bgr.shape[:2], imgsz)
    resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((imgsz, imgsz, 3), PAD_VALUE, np.uint8)
    canvas[:new_h, :new_w] = resized
    rgb = canvas[:, :, ::-1].transpose(2, 0, 1)  # (3, S, S)
    return np.ascontiguousarray(rgb, dtype=np.float32)[None], scale

"""The one output type of every inference path (torch, ONNX Runtime, camera loop)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Boxes in original-image pixels (x1, y1, x2, y2), scores in 0..1, labels as indices into the class list."""

    boxes_xyxy: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

"""A torch checkpoint as a predictor: the same letterbox and decode as the ONNX Runtime path."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgedet.runtime.detections import Detections
from edgedet.runtime.postprocess import to_original
from edgedet.runtime.preprocess import letterbox


class TorchPredictor:
    """``predictor(image_bgr) -> Detections`` in original-image pixels, for a ``Detector`` or an
    ``SSDLiteDetector`` (both have ``arch``, ``raw`` and ``decode``)."""

    def __init__(self, model: nn.Module, *, conf: float = 0.05, iou: float = 0.6) -> None:
        self.model, self.conf, self.iou = model.eval(), conf, iou
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def __call__(self, image_bgr: np.ndarray) -> Detections:
        tensor, scale = letterbox(image_bgr, self.model.arch.imgsz)
        raw = self.model.raw(torch.from_numpy(tensor).to(self.device))[0]
        return to_original(self.model.decode(raw, conf=self.conf, iou=self.iou), scale, image_bgr.shape[:2])

"""The Detector: one contract for training, evaluation and export.

- ``model(images, targets)`` in training mode returns a dict of losses;
- ``model(images)`` in eval mode returns one ``Detections`` per image (boxes in model-input pixels), decoded by
  the numpy post-processing of ``edgedet.runtime.postprocess`` that ONNX Runtime uses;
- ``model.raw(images)`` returns the head tensor ``(B, N, 4 + K)`` that ONNX exports.

Images are float RGB in 0..255, letterboxed to the ArchSpec's input size; the model normalises them itself, so the
exported graph takes what the camera gives.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgedet.detect import HEADS
from edgedet.detect.head import DetectionHead
from edgedet.detect.loss import DetectionLoss, check_targets
from edgedet.detect.neck import PANLite
from edgedet.errors import UsageError
from edgedet.runtime.detections import Detections
from edgedet.runtime.postprocess import anchor_points, decode
from edgedet.runtime.sidecar import OUTPUT_CONTRACT
from edgedet.space.archspec import ArchSpec
from edgedet.space.backbone import Backbone
from edgedet.space.pretrained import LITE0_INPUT_MEAN, LITE0_INPUT_SCALE


def build_detector(arch: ArchSpec, num_classes: int, *, head: str = "edgedet", neck_channels: int = 96,
                   pretrained: bool = False) -> nn.Module:
    """A detector with the ``head`` named (see ``HEADS``) on the ArchSpec's backbone."""
    if head == "ssdlite":
        from edgedet.detect.ssdlite import SSDLiteDetector

        return SSDLiteDetector(arch, num_classes, pretrained=pretrained)
    if head != "edgedet":
        raise UsageError(f"head '{head}': use one of {', '.join(HEADS)}")
    return Detector(arch, num_classes, neck_channels=neck_channels, pretrained=pretrained)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """RGB 0..255 -> what the backbone takes: ``(x − 127) / 128``, as the Lite0 weights were trained."""
    return (images - LITE0_INPUT_MEAN) / LITE0_INPUT_SCALE


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A tensor as float32 numpy on the CPU, for the numpy post-processing."""
    return tensor.detach().float().cpu().numpy()


class DetectorContract(nn.Module):
    """What every detector here keeps: ``model(images, targets)`` -> losses in training (targets checked first),
    ``model(images)`` -> one ``Detections`` per image in eval. Subclasses give ``raw``, ``decode`` and ``losses``."""

    num_classes: int

    def forward(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None
                ) -> dict[str, torch.Tensor] | list[Detections]:
        if self.training:
            if targets is None:
                raise ValueError("training mode needs targets: model(images, targets)")
            check_targets(targets, self.num_classes)
            return self.losses(images, targets)
        return [self.decode(r) for r in self.raw(images)]


class Detector(DetectorContract):
    output_contract = OUTPUT_CONTRACT

    def __init__(self, arch: ArchSpec, num_classes: int, *, neck_channels: int = 96, pretrained: bool = False,
                 backbone: nn.Module | None = None) -> None:
        """``backbone`` replaces the ArchSpec's (the search's supernet); it returns the three taps and has
        ``out_channels``."""
        super().__init__()
        self.arch, self.num_classes = arch, num_classes
        self.backbone = backbone if backbone is not None else Backbone(arch)
        if pretrained and backbone is None:
            from edgedet.space.pretrained import inherit_lite0

            inherit_lite0(self.backbone)
        act = arch.search_space.act
        self.neck = PANLite(self.backbone.out_channels, neck_channels, act=act)
        self.head = DetectionHead(neck_channels, num_classes, act=act)
        self.loss = DetectionLoss(num_classes)
        points, strides = anchor_points(arch.imgsz)
        self.register_buffer("points", torch.from_numpy(points), persistent=False)
        self.register_buffer("strides", torch.from_numpy(strides), persistent=False)

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) RGB 0..255 -> (B, N, 4 + K) raw head output."""
        return self.head(self.neck(self.backbone(normalise(images))))

    def losses(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return self.loss(self.raw(images), self.points, self.strides, targets)

    def decode(self, raw: torch.Tensor, *, conf: float = 0.05, iou: float = 0.6) -> Detections:
        """One image's ``(N, 4 + K)`` through the numpy decode + NMS that ONNX Runtime runs, so torch and ONNX
        predictions cannot drift apart."""
        return decode(to_numpy(raw), to_numpy(self.points), to_numpy(self.strides), conf=conf, iou=iou)

"""Box-aware transforms (torchvision ``transforms.v2``) for ``(image, target)`` samples of ``CocoDetection``.

Letterbox, the project's one input geometry, on tensors here and on numpy images in
``edgedet.runtime.preprocess.letterbox``; both size it with ``letterbox_size`` from there::

    resize to letterbox_size(h, w, imgsz): bilinear, half-pixel centres, no antialias (as cv2.INTER_LINEAR)
    pad right and bottom with 114 to (imgsz, imgsz); no centring, so a model box maps back as box / scale

``target["scale"]`` holds that scale after the transform. The output image stays uint8 (3, imgsz, imgsz) RGB; the
model takes it as float 0..255 and normalises inside its graph.

Determinism: every random choice here draws from torch's global RNG. In a DataLoader worker that RNG is seeded with
``base_seed + worker_id``, and ``base_seed`` comes from the loader's ``generator``, so
``DataLoader(..., generator=torch.Generator().manual_seed(seed))`` repeats the augmentation of a run for a fixed
number of workers; with ``num_workers=0`` the transforms run in the main process: call ``torch.manual_seed(seed)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F
from torchvision.transforms.v2 import query_size

from edgedet.runtime.preprocess import PAD_VALUE, letterbox_size


class Letterbox(v2.Transform):
    """Resize the longer side to ``imgsz`` (bilinear, no antialias) and pad right/bottom with 114 to a square.

    Called as ``letterbox(image, target)`` it also sets ``target["scale"]``.
    """

    def __init__(self, imgsz: int) -> None:
        super().__init__()
        self.imgsz = imgsz

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        _, new_h, new_w = letterbox_size(*query_size(flat_inputs), self.imgsz)
        return {"size": [new_h, new_w], "padding": [0, 0, self.imgsz - new_w, self.imgsz - new_h]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        resized = F.resize(inpt, params["size"], interpolation=v2.InterpolationMode.BILINEAR, antialias=False)
        return F.pad(resized, params["padding"], fill=PAD_VALUE)

    def forward(self, *inputs: Any) -> Any:
        outputs = super().forward(*inputs)
        if isinstance(outputs, tuple) and len(outputs) == 2 and isinstance(outputs[1], dict):  # (image, target)
            image = inputs[0] if len(inputs) > 1 else inputs[0][0]
            outputs[1]["scale"] = letterbox_size(*F.get_size(image), self.imgsz)[0]
        return outputs


def letterbox_transform(imgsz: int) -> Letterbox:
    """The letterbox alone, as a v2 transform of ``(image, target)`` or of an image."""
    return Letterbox(imgsz)


def eval_transforms(imgsz: int) -> Letterbox:
    """Evaluation and calibration: the letterbox only, so predictions map back to the image as ``box / scale``."""
    return Letterbox(imgsz)


def train_transforms(imgsz: int) -> v2.Compose:
    """SSD-style light augmentation: zoom-out, IoU crop, flip, letterbox, colour; then drop degenerate boxes.

    Chosen for small data on a CPU (about 25 ms a COCO image on one thread, decoding included): zoom-out teaches
    small objects, the IoU crop large ones; colour runs after the resize, on fewer pixels, and hue (4x the cost of
    brightness, contrast and saturation together) on a fifth of the images. ``SanitizeBoundingBoxes`` drops boxes
    that a crop reduced below 1 px together with their ``labels``; crowd boxes travel in ``boxes`` with label -1,
    so they follow the same geometry.
    """
    return v2.Compose([
        v2.RandomZoomOut(fill=PAD_VALUE, side_range=(1.0, 2.0), p=0.3),
        v2.RandomApply([v2.RandomIoUCrop(min_scale=0.4)], p=0.5),
        v2.RandomHorizontalFlip(),
        Letterbox(imgsz),
        v2.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.3),
        v2.RandomApply([v2.ColorJitter(hue=0.015)], p=0.2),
        v2.ClampBoundingBoxes(),
        v2.SanitizeBoundingBoxes(labels_getter=_labels),
    ])


def _labels(sample: tuple[torch.Tensor, dict[str, Any]]) -> tuple[torch.Tensor, ...]:
    """What SanitizeBoundingBoxes drops together with a box: ``target["labels"]`` (which also marks crowd boxes,
    -1) and, for teacher labels, ``target["scores"]``."""
    target = sample[1]
    return (target["labels"], target["scores"]) if "scores" in target else (target["labels"],)

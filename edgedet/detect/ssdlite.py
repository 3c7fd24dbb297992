"""torchvision's SSDlite on an edgedet backbone: the baseline that shows whether edgedet's head earns its place.

The head, default boxes, box coder, matching and loss (hard negative mining) are torchvision's own
(``torchvision.models.detection.ssdlite``), wired as ``ssdlite320_mobilenet_v3_large`` wires them: the backbone's
stride-16 and stride-32 features, then four extra blocks (1x1, depthwise 3x3 stride 2, 1x1, ReLU6) down to stride
512, six levels of default boxes with aspect ratios 2 and 3. Only the backbone is edgedet's, so that with the same
ArchSpec, pretrained weights, data and recipe the two heads compare fairly.

Same contract as ``Detector``: losses in training, ``Detections`` in eval, and ``raw()`` for export, which here
decodes the boxes inside the graph: ``(B, N, 4 + K)`` = x1, y1, x2, y2 in model pixels, then K class probabilities.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD
from torchvision.models.detection.ssdlite import SSDLiteHead
from torchvision.ops.misc import Conv2dNormActivation

from edgedet.detect.model import DetectorContract, normalise, to_numpy
from edgedet.runtime.detections import Detections
from edgedet.runtime.postprocess import select_boxes
from edgedet.runtime.sidecar import BOXES_OUTPUT_CONTRACT
from edgedet.space.archspec import ArchSpec
from edgedet.space.backbone import Backbone
from edgedet.space.pretrained import LITE0_INPUT_MEAN, LITE0_INPUT_SCALE

EXTRA_CHANNELS = (512, 256, 256, 128)  # torchvision's SSDlite extra levels
NORM = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)  # as torchvision's SSDlite


def extra_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """torchvision's SSDlite extra level (its ``_extra_block`` is private): 1x1 to half width, depthwise 3x3
    stride 2, 1x1 out (ReLU6 throughout)."""
    mid = out_ch // 2
    return nn.Sequential(
        Conv2dNormActivation(in_ch, mid, kernel_size=1, norm_layer=NORM, activation_layer=nn.ReLU6),
        Conv2dNormActivation(mid, mid, kernel_size=3, stride=2, groups=mid, norm_layer=NORM, activation_layer=nn.ReLU6),
        Conv2dNormActivation(mid, out_ch, kernel_size=1, norm_layer=NORM, activation_layer=nn.ReLU6))


class SSDLiteFeatures(nn.Module):
    """Normalised images -> the six SSDlite feature maps (stride 16, 32, then the extra levels)."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone
        widths = [*backbone.out_channels[1:], *EXTRA_CHANNELS]
        self.extra = nn.ModuleList(extra_block(a, b) for a, b in zip(widths[1:], widths[2:]))
        self.out_channels = widths

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features = self.backbone(x)[1:]
        for block in self.extra:
            features.append(block(features[-1]))
        return OrderedDict((str(i), f) for i, f in enumerate(features))


class SSDLiteDetector(DetectorContract):
    output_contract = BOXES_OUTPUT_CONTRACT

    def __init__(self, arch: ArchSpec, num_classes: int, *, pretrained: bool = False) -> None:
        super().__init__()
        self.arch, self.num_classes = arch, num_classes
        backbone = Backbone(arch)
        if pretrained:
            from edgedet.space.pretrained import inherit_lite0

            inherit_lite0(backbone)
        features = SSDLiteFeatures(backbone)
        boxes = DefaultBoxGenerator([[2, 3]] * len(features.out_channels), min_ratio=0.2, max_ratio=0.95)
        head = SSDLiteHead(features.out_channels, boxes.num_anchors_per_location(), num_classes + 1, NORM)
        size = arch.imgsz
        self.ssd = SSD(features, boxes, (size, size), num_classes + 1, image_mean=[LITE0_INPUT_MEAN / 255] * 3,
                       image_std=[LITE0_INPUT_SCALE / 255] * 3, head=head)
        self.register_buffer("anchors", self._default_boxes(), persistent=False)

    @torch.no_grad()
    def _default_boxes(self) -> torch.Tensor:
        """(N, 4) default boxes of an S x S input, in the head's output order."""
        size, training = self.arch.imgsz, self.training
        image = torch.zeros(1, 3, size, size)
        maps = list(self.ssd.backbone.eval()(image).values())
        self.ssd.backbone.train(training)
        return self.ssd.anchor_generator(ImageList(image, [(size, size)]), maps)[0]

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) RGB 0..255 -> (B, N, 4 + K): decoded boxes, then class probabilities. The box decode is
        in the graph because it needs torchvision's default boxes and box coder; selection and NMS stay outside, in
        the numpy ``select_boxes`` that ``decode`` and ONNX Runtime share."""
        x = normalise(images)
        out = self.ssd.head(list(self.ssd.backbone(x).values()))
        batch = len(images)
        boxes = self.ssd.box_coder.decode_single(out["bbox_regression"].reshape(-1, 4), self.anchors.repeat(batch, 1))
        probs = F.softmax(out["cls_logits"], -1)[..., 1:]  # background dropped
        return torch.cat([boxes.reshape(batch, -1, 4), probs], -1)

    def losses(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """torchvision's SSD loss (its matching and hard negative mining), named as edgedet's losses are."""
        shifted = [{"boxes": t["boxes"], "labels": t["labels"].long() + 1} for t in targets]  # 0: background
        losses = self.ssd(list(images / 255), shifted)
        return {"loss_cls": losses["classification"], "loss_box": losses["bbox_regression"]}

    def decode(self, raw: torch.Tensor, *, conf: float = 0.05, iou: float = 0.6) -> Detections:
        """One image's ``(N, 4 + K)``: the numpy selection + NMS that ONNX Runtime runs."""
        return select_boxes(to_numpy(raw), conf=conf, iou=iou)

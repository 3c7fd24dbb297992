"""PAN-lite neck: lateral 1x1 convs to one width, a top-down and a bottom-up path of depthwise-separable convs.

Cheap on edge devices (NanoDet and PicoDet show the way) and built only from conv/BN/ReLU-family ops, nearest
upsampling and adds, which ONNX Runtime INT8 handles well.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgedet.space.blocks import ConvBNAct


class SeparableConv(nn.Sequential):
    """Depthwise kxk (stride s) + BN + act, then pointwise 1x1 + BN + act."""

    def __init__(self, channels: int, *, stride: int = 1, act: str = "relu6") -> None:
        super().__init__(
            ConvBNAct(channels, channels, kernel=3, stride=stride, groups=channels, act=act),
            ConvBNAct(channels, channels, act=act),
        )


class PANLite(nn.Module):
    """Three taps (strides 8, 16, 32) in, three ``channels``-wide maps out at the same strides."""

    def __init__(self, in_channels: tuple[int, int, int], channels: int, act: str = "relu6") -> None:
        super().__init__()
        self.lateral = nn.ModuleList(ConvBNAct(c, channels, act=act) for c in in_channels)
        self.top_down = nn.ModuleList(SeparableConv(channels, act=act) for _ in range(2))
        self.downsample = nn.ModuleList(
            ConvBNAct(channels, channels, kernel=3, stride=2, groups=channels, act=act) for _ in range(2)
        )
        self.bottom_up = nn.ModuleList(SeparableConv(channels, act=act) for _ in range(2))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        c3, c4, c5 = (lateral(f) for lateral, f in zip(self.lateral, features))
        p4 = self.top_down[0](c4 + F.interpolate(c5, scale_factor=2.0, mode="nearest"))  # (B, C, H/16, W/16)
        p3 = self.top_down[1](c3 + F.interpolate(p4, scale_factor=2.0, mode="nearest"))  # (B, C, H/8, W/8)
        n4 = self.bottom_up[0](p4 + self.downsample[0](p3))
        n5 = self.bottom_up[1](c5 + self.downsample[1](n4))  # (B, C, H/32, W/32)
        return [p3, n4, n5]

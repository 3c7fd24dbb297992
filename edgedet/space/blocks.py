"""The candidate blocks, all built by one constructor signature: ``make_op(name, in_ch=, out_ch=, stride=, act=)``.

FBNet block: 1x1 conv (groups g) + BN + act -> channel shuffle when g=2 -> kxk depthwise (stride s) + BN + act
-> 1x1 conv (groups g) + BN -> residual add when s=1 and Cin=Cout. ``skip`` is the identity, or 1x1 conv + BN +
act when the stride or width changes.

Padding is TensorFlow "same": symmetric for stride 1, and for stride 2 a fixed asymmetric pad (more on the
bottom/right) that is exact for even input sizes. That is what the EfficientNet-Lite0 checkpoint was trained
with, and a fixed ``ZeroPad2d`` exports to one ONNX Pad node instead of shape arithmetic. BN eps is 1e-3 (TF).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from edgedet.space.spaces import CANDIDATES

BN_EPS = 1e-3
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "relu6": nn.ReLU6}


class ConvBNAct(nn.Sequential):
    """[pad | subsample] -> conv (no bias) -> BN -> [act], with TF-"same" padding."""

    def __init__(self, in_ch: int, out_ch: int, *, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: str | None = None) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        padding = kernel // 2
        if stride > 1 and kernel == 1:
            # a strided 1x1 conv = every stride-th pixel, then a 1x1 conv at stride 1: on channels-last inputs with
            # fewer than 16 channels oneDNN's strided 1x1 backward writes past its workspace (oneDNN issue #6035),
            # heap corruption that aborted searches in the tiny space
            layers["subsample"] = nn.AvgPool2d(kernel_size=1, stride=stride)
            stride = 1
        if stride == 2 and kernel > 1:
            before = (kernel - 2) // 2
            layers["pad"] = nn.ZeroPad2d((before, kernel - 2 - before, before, kernel - 2 - before))
            padding = 0
        layers["conv"] = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=False)
        layers["bn"] = nn.BatchNorm2d(out_ch, eps=BN_EPS)
        if act:
            layers["act"] = ACTIVATIONS[act](inplace=True)
        super().__init__(layers)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: interleave the groups so grouped 1x1 convs see each other's channels."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.reshape(b, self.groups, c // self.groups, h, w)  # (B, g, C/g, H, W)
        return x.transpose(1, 2).reshape(b, c, h, w)


class FBNetBlock(nn.Module):
    """Inverted residual with optional grouped 1x1 convs (the 8 non-skip candidates)."""

    def __init__(self, *, in_ch: int, out_ch: int, stride: int, act: str, kernel: int, expansion: int,
                 groups: int) -> None:
        super().__init__()
        mid = in_ch * expansion
        self.expand = ConvBNAct(in_ch, mid, groups=groups, act=act)
        self.shuffle = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.depthwise = ConvBNAct(mid, mid, kernel=kernel, stride=stride, groups=mid, act=act)
        self.project = ConvBNAct(mid, out_ch, groups=groups)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x)  # (B, mid, H, W)
        y = self.shuffle(y)
        y = self.depthwise(y)  # (B, mid, H/s, W/s)
        y = self.project(y)  # (B, out, H/s, W/s)
        return x + y if self.residual else y


class SkipBlock(nn.Module):
    """Identity, or a 1x1 conv + BN + act where the stride or the width changes."""

    def __init__(self, *, in_ch: int, out_ch: int, stride: int, act: str) -> None:
        super().__init__()
        needs_conv = stride != 1 or in_ch != out_ch
        self.proj = ConvBNAct(in_ch, out_ch, stride=stride, act=act) if needs_conv else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def make_op(name: str, *, in_ch: int, out_ch: int, stride: int, act: str) -> nn.Module:
    """Build candidate ``name``; every candidate takes exactly these arguments."""
    spec = CANDIDATES[name]
    if spec.is_skip:
        return SkipBlock(in_ch=in_ch, out_ch=out_ch, stride=stride, act=act)
    return FBNetBlock(in_ch=in_ch, out_ch=out_ch, stride=stride, act=act, kernel=spec.kernel,
                      expansion=spec.expansion, groups=spec.groups)


def make_stem(out_ch: int, act: str) -> ConvBNAct:
    return ConvBNAct(3, out_ch, kernel=3, stride=2, act=act)

"""A backbone built from an ArchSpec: stem, one candidate block per layer, features at strides 8/16/32."""

from __future__ import annotations

import torch
from torch import nn

from edgedet.space.archspec import ArchSpec
from edgedet.space.blocks import make_op, make_stem


class Backbone(nn.Module):
    """``forward(x)`` returns the three tapped feature maps ``[(B, C8, H/8, W/8), (B, C16, ..), (B, C32, ..)]``."""

    def __init__(self, arch: ArchSpec) -> None:
        super().__init__()
        space = arch.search_space
        self.arch = arch
        self.stem = make_stem(space.stem_out, space.act)
        self.layers = nn.ModuleList(
            make_op(op, in_ch=layer.cin, out_ch=layer.cout, stride=layer.stride, act=space.act)
            for op, layer in zip(arch.ops, arch.layers())
        )
        self.taps = space.tap_layers()
        self.out_channels = space.tap_channels()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # (B, C, H/2, W/2)
        features = []
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index in self.taps:
                features.append(x)
        return features


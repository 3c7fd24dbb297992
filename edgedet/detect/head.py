"""Shared anchor-free head: one tower for all levels, class logits and ``(l, t, r, b)`` box regression per point.

The raw output is what ONNX exports: ``(B, N, 4 + K)``, decoded outside the graph (``edgedet.runtime.postprocess``).
A learnable scale per level lets the shared regression conv serve strides 8 to 32 (as FCOS does).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgedet.detect.neck import SeparableConv

PRIOR_PROB = 0.01  # initial foreground probability: keeps the classification loss sane at the start


class SharedHead(nn.Module):
    def __init__(self, channels: int, num_classes: int, *, levels: int = 3, depth: int = 2, act: str = "relu6") -> None:
        super().__init__()
        self.tower = nn.Sequential(*(SeparableConv(channels, act=act) for _ in range(depth)))
        self.cls = nn.Conv2d(channels, num_classes, 1)
        self.reg = nn.Conv2d(channels, 4, 1)
        self.scales = nn.Parameter(torch.ones(levels))
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.constant_(self.cls.bias, -math.log((1 - PRIOR_PROB) / PRIOR_PROB))
        nn.init.normal_(self.reg.weight, std=0.01)
        nn.init.zeros_(self.reg.bias)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        outputs = []
        for level, feature in enumerate(features):
            x = self.tower(feature)
            out = torch.cat([self.reg(x) * self.scales[level], self.cls(x)], 1)  # (B, 4 + K, H, W)
            outputs.append(out.flatten(2))  # (B, 4 + K, H*W)
        return torch.cat(outputs, 2).transpose(1, 2)  # (B, N, 4 + K)

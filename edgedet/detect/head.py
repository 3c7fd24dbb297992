"""Anchor-free head: a small tower per level, class logits and ``(l, t, r, b)`` box regression per point.

Why a tower per level (as NanoDet and PicoDet do) rather than one shared across levels (as FCOS does): FCOS shares
with GroupNorm; with BatchNorm a shared tower normalises each level by its own batch statistics in training but by
one running average of all levels in eval, and that mismatch wrecks the eval-mode scores. The compute is the same.

The raw output is what ONNX exports: ``(B, N, 4 + K)``, decoded outside the graph (``edgedet.runtime.postprocess``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgedet.detect.neck import SeparableConv

PRIOR_PROB = 0.01  # initial foreground probability: keeps the classification loss sane at the start


class LevelHead(nn.Module):
    """One level's tower and its 1x1 predictions: ``(B, C, H, W)`` -> ``(B, 4 + K, H*W)``."""

    def __init__(self, channels: int, num_classes: int, *, depth: int, act: str) -> None:
        super().__init__()
        self.tower = nn.Sequential(*(SeparableConv(channels, act=act) for _ in range(depth)))
        self.cls = nn.Conv2d(channels, num_classes, 1)
        self.reg = nn.Conv2d(channels, 4, 1)
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.constant_(self.cls.bias, -math.log((1 - PRIOR_PROB) / PRIOR_PROB))
        nn.init.normal_(self.reg.weight, std=0.01)
        nn.init.zeros_(self.reg.bias)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        x = self.tower(feature)
        return torch.cat([self.reg(x), self.cls(x)], 1).flatten(2)


class DetectionHead(nn.Module):
    def __init__(self, channels: int, num_classes: int, *, levels: int = 3, depth: int = 2, act: str = "relu6") -> None:
        super().__init__()
        self.levels = nn.ModuleList(LevelHead(channels, num_classes, depth=depth, act=act) for _ in range(levels))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        outputs = [head(feature) for head, feature in zip(self.levels, features)]  # each (B, 4 + K, H*W)
        return torch.cat(outputs, 2).transpose(1, 2)  # (B, N, 4 + K)

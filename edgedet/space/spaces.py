"""Search spaces as data: the 9 FBNet candidate ops and the macro-architectures they fill.

A space is a stem (3x3 stride-2 conv) followed by stages of searchable layers. Each stage is
``(channels, layers, first_stride)``; only the first layer of a stage changes stride or width. The
detector taps the outputs of three stages, at strides 8, 16 and 32.

Candidate op names read ``k{kernel}_e{expansion}[_g{groups}]`` plus ``skip``:
``k5_e6`` is a 5x5 depthwise block with a 6x wider middle, ``k3_e1_g2`` uses grouped 1x1 convs.

This module is torch-free so that profiles, the analytic predictor and ArchSpec parsing stay light.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace

from edgedet.errors import UsageError


@dataclass(frozen=True)
class OpDef:
    """One candidate op: kernel, expansion and 1x1-conv groups; ``kernel == 0`` marks ``skip``."""

    name: str
    kernel: int
    expansion: int
    groups: int

    @property
    def is_skip(self) -> bool:
        return self.kernel == 0


CANDIDATES: dict[str, OpDef] = {
    op.name: op
    for op in (
        OpDef("k3_e1", 3, 1, 1),
        OpDef("k3_e1_g2", 3, 1, 2),
        OpDef("k3_e3", 3, 3, 1),
        OpDef("k3_e6", 3, 6, 1),
        OpDef("k5_e1", 5, 1, 1),
        OpDef("k5_e1_g2", 5, 1, 2),
        OpDef("k5_e3", 5, 3, 1),
        OpDef("k5_e6", 5, 6, 1),
        OpDef("skip", 0, 0, 1),
    )
}
OP_NAMES: tuple[str, ...] = tuple(CANDIDATES)


@dataclass(frozen=True)
class Stage:
    channels: int
    layers: int
    stride: int


@dataclass(frozen=True)
class LayerShape:
    """Everything about one searchable layer that decides its cost (and its LUT key)."""

    index: int
    stage: int
    cin: int
    cout: int
    stride: int
    height: int  # input height
    width: int  # input width

    @property
    def changes_shape(self) -> bool:
        return self.stride != 1 or self.cin != self.cout


@dataclass(frozen=True)
class SearchSpace:
    """A macro-architecture: stem, stages, taps, activation, width multiplier and default ops."""

    name: str
    description: str
    stem_channels: int
    stages: tuple[Stage, ...]
    tap_stages: tuple[int, int, int]  # stage indices whose outputs feed the detector (strides 8, 16, 32)
    act: str = "relu"
    width_mult: float = 1.0
    default_imgsz: int = 320
    skip_changes_shape: bool = True  # may ``skip`` stand where stride or width changes (as a 1x1 conv)?
    default_ops: tuple[str, ...] = ()  # a known-good architecture: the space's reference point

    def scaled(self, channels: int) -> int:
        """Width-multiplied channel count, rounded to a multiple of 8 as MobileNets do."""
        if self.width_mult == 1.0:
            return channels
        return max(8, int(channels * self.width_mult + 4) // 8 * 8)

    @property
    def stem_out(self) -> int:
        return self.scaled(self.stem_channels)

    @property
    def num_layers(self) -> int:
        return sum(stage.layers for stage in self.stages)

    def with_options(self, *, width_mult: float | None = None, act: str | None = None) -> "SearchSpace":
        return replace(self, width_mult=width_mult or self.width_mult, act=act or self.act)

    def layers(self, imgsz: int) -> list[LayerShape]:
        """The searchable layers' shapes at a square input size (a multiple of 32)."""
        check_imgsz(imgsz)
        size, cin, shapes = imgsz // 2, self.stem_out, []
        for stage_index, stage in enumerate(self.stages):
            cout = self.scaled(stage.channels)
            for i in range(stage.layers):
                stride = stage.stride if i == 0 else 1
                shapes.append(LayerShape(len(shapes), stage_index, cin, cout, stride, size, size))
                size //= stride
                cin = cout
        return shapes

    def tap_layers(self) -> tuple[int, int, int]:
        """Index of the last layer of each tapped stage."""
        ends, total = [], 0
        for stage in self.stages:
            total += stage.layers
            ends.append(total - 1)
        return tuple(ends[s] for s in self.tap_stages)  # type: ignore[return-value]

    def tap_channels(self) -> tuple[int, int, int]:
        return tuple(self.scaled(self.stages[s].channels) for s in self.tap_stages)  # type: ignore[return-value]

    def allowed_ops(self, layer: LayerShape) -> tuple[str, ...]:
        if layer.changes_shape and not self.skip_changes_shape:
            return tuple(op for op in OP_NAMES if op != "skip")
        return OP_NAMES


def check_imgsz(imgsz: int) -> None:
    if imgsz < 32 or imgsz % 32:
        raise UsageError(f"input size {imgsz} is not a positive multiple of 32: use e.g. --imgsz 320")


LITE0_OPS = ("k3_e1", "k3_e6", "k3_e6", "k5_e6", "k5_e6", "k3_e6", "k3_e6", "k3_e6",
             "k5_e6", "k5_e6", "k5_e6", "k5_e6", "k5_e6", "k5_e6", "k5_e6", "k3_e6")

SPACES: dict[str, SearchSpace] = {
    "fbnet": SearchSpace(
        name="fbnet",
        description="FBNet (Wu et al., CVPR 2019): 22 searchable layers, 9^22 architectures",
        stem_channels=16,
        stages=(Stage(16, 1, 1), Stage(24, 4, 2), Stage(32, 4, 2),
                Stage(64, 4, 2), Stage(112, 4, 1), Stage(184, 4, 2), Stage(352, 1, 1)),  # FBNet's Table 1
        tap_stages=(2, 4, 6),
        act="relu",
        skip_changes_shape=True,
        default_ops=("k3_e1",) + ("k3_e6",) * 21,
    ),
    "lite0": SearchSpace(
        name="lite0",
        description="EfficientNet-Lite0 macro-architecture: 16 layers, ImageNet-pretrained init available",
        stem_channels=32,
        stages=(Stage(16, 1, 1), Stage(24, 2, 2), Stage(40, 2, 2), Stage(80, 3, 2),
                Stage(112, 3, 1), Stage(192, 4, 2), Stage(320, 1, 1)),
        tap_stages=(2, 4, 6),
        act="relu6",
        skip_changes_shape=False,
        default_ops=LITE0_OPS,
    ),
    "tiny": SearchSpace(
        name="tiny",
        description="A 5-layer toy space for tests and quick demos (seconds to profile)",
        stem_channels=8,
        stages=(Stage(8, 1, 1), Stage(16, 1, 2), Stage(24, 1, 2), Stage(32, 1, 2), Stage(48, 1, 2)),
        tap_stages=(2, 3, 4),
        act="relu",
        default_imgsz=64,
        default_ops=("k3_e1", "k3_e3", "k3_e3", "k3_e3", "k3_e3"),
    ),
}


def get_space(name: str, *, width_mult: float = 1.0, act: str | None = None) -> SearchSpace:
    """Look a space up by name; unknown names fail with the list and the closest match."""
    if name not in SPACES:
        close = difflib.get_close_matches(name, SPACES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UsageError(f"unknown search space {name!r}{hint}; known: {', '.join(SPACES)}")
    if act not in (None, "relu", "relu6"):
        raise UsageError(f"unknown activation {act!r}: use relu or relu6 (they quantize well)")
    if not 0.1 <= width_mult <= 4.0:
        raise UsageError(f"width multiplier {width_mult} is outside 0.1..4.0")
    return SPACES[name].with_options(width_mult=width_mult, act=act)

"""Latency models: a measured look-up table (LUT) or an analytic model, one interface for both.

A LUT file (``<device>.<precision>.json``) holds latency in milliseconds keyed by everything that changes it::

    "k3_e6 24>40 s2 80x80 fp32 ort-cpu-t1": 0.412      # op Cin>Cout stride HxW precision runtime
    "stem 3>32 s2 320x320 fp32 ort-cpu-t1": 0.210      # fixed cost: the stem conv
    "overhead lite0@320 fp32 ort-cpu-t1": 0.031        # fixed cost: per-model constant (session, I/O copies)

so that ``sum(fixed) + sum(layer entries)`` predicts a whole model. Beside the entries: ``format``, ``device``,
``precision``, ``runtime``, ``reference`` (the architecture every entry was timed against and its latency) and
``provenance`` (date, ONNX Runtime version, CPU, protocol).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgedet.errors import UsageError
from edgedet.space.archspec import ArchSpec
from edgedet.space.spaces import OP_NAMES, LayerShape, SearchSpace

LUT_FORMAT = "edgedet-lut/1"


class LatencyModel(Protocol):
    """Predicts milliseconds per searchable layer plus the fixed costs of a whole backbone."""

    precision: str

    def layer_ms(self, op: str, layer: LayerShape) -> float: ...

    def fixed_ms(self, space: SearchSpace, imgsz: int) -> float: ...


def predict_ms(model: LatencyModel, arch: ArchSpec) -> float:
    """Whole-backbone latency: fixed costs plus every chosen op."""
    layers = arch.layers()
    return model.fixed_ms(arch.search_space, arch.imgsz) + sum(
        model.layer_ms(op, layer) for op, layer in zip(arch.ops, layers)
    )


def layer_table(model: LatencyModel, space: SearchSpace, imgsz: int) -> np.ndarray:
    """``(layers, 9)`` latency table in ms, ``inf`` where the space forbids an op: what search and DP read."""
    layers = space.layers(imgsz)
    table = np.full((len(layers), len(OP_NAMES)), np.inf)
    for layer in layers:
        for op in space.allowed_ops(layer):
            table[layer.index, OP_NAMES.index(op)] = model.layer_ms(op, layer)
    return table


def layer_key(op: str, layer: LayerShape, precision: str, runtime: str) -> str:
    return f"{op} {layer.cin}>{layer.cout} s{layer.stride} {layer.height}x{layer.width} {precision} {runtime}"


def stem_key(space: SearchSpace, imgsz: int, precision: str, runtime: str) -> str:
    return f"stem 3>{space.stem_out} s2 {imgsz}x{imgsz} {precision} {runtime}"


def overhead_key(space: SearchSpace, imgsz: int, precision: str, runtime: str) -> str:
    width = "" if space.width_mult == 1.0 else f",w{space.width_mult:g}"
    return f"overhead {space.name}{width}@{imgsz} {precision} {runtime}"


@dataclass
class LatencyLUT:
    """A measured LUT for one device, precision and runtime."""

    device: str
    precision: str
    runtime: str
    entries: dict[str, float] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def _get(self, key: str) -> float:
        if key not in self.entries:
            where = f" ({self.path})" if self.path else ""
            raise UsageError(
                f"the {self.device} LUT{where} has no entry '{key}': build it for this space and input size with "
                f"`edgedet profile build --name {self.device} --precision {self.precision} --space SPACE --imgsz N`"
            )
        return self.entries[key]

    def layer_ms(self, op: str, layer: LayerShape) -> float:
        return self._get(layer_key(op, layer, self.precision, self.runtime))

    def fixed_ms(self, space: SearchSpace, imgsz: int) -> float:
        return self._get(stem_key(space, imgsz, self.precision, self.runtime)) + self._get(
            overhead_key(space, imgsz, self.precision, self.runtime)
        )

    def to_json(self) -> dict[str, Any]:
        return {"format": LUT_FORMAT, "device": self.device, "precision": self.precision, "runtime": self.runtime,
                "reference": self.reference, "provenance": self.provenance, "entries": self.entries}

    @classmethod
    def load(cls, path: Path) -> "LatencyLUT":
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UsageError(f"{path}: LUT file not found; build it with `edgedet profile build`") from None
        except json.JSONDecodeError as err:
            raise UsageError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(data, dict) or data.get("format") != LUT_FORMAT:
            raise UsageError(f"{path}: field 'format' must be '{LUT_FORMAT}'")
        for name in ("device", "precision", "runtime", "entries"):
            if name not in data:
                raise UsageError(f"{path}: missing field '{name}'")
        bad = [k for k, v in data["entries"].items()
               if not isinstance(v, (int, float)) or not (v >= 0 or k.startswith("overhead "))]
        if bad:
            raise UsageError(f"{path}: field 'entries' has a non-numeric or negative latency at '{bad[0]}'")
        return cls(data["device"], data["precision"], data["runtime"], dict(data["entries"]),
                   data.get("reference", {}), data.get("provenance", {}), path)

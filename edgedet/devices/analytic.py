"""An analytic latency model for devices we cannot measure on: a roofline per kernel, plus fixed overheads.

Each kernel from ``edgedet.space.cost`` takes ``max(compute, memory) + overhead``: compute is its MACs at the
fraction of peak that its kind reaches (dense convs get closest, depthwise convs stay far from it), memory is the
bytes it reads and writes at the attainable DRAM bandwidth, and the overhead is a fixed launch/dispatch cost per
kind. Searchable layers may add a per-layer cost (runtimes that execute each layer on its own) and a whole model
adds a per-inference constant (session, input/output copies). No caches are modelled, so small tensors that stay
on chip are charged DRAM time: the per-kind overheads, fitted or guessed, absorb part of that.

Parameters live in the device profile (``latency.analytic.<precision>``); see ``device_profiles/*.yaml`` for where
each number comes from. Torch-free on purpose: profiles and search must not need torch.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields
from typing import Any

from edgedet.errors import UsageError
from edgedet.space.cost import Kernel, op_kernels, stem_kernels
from edgedet.space.spaces import LayerShape, SearchSpace

BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "int8": 1}


@dataclass(frozen=True)
class PerKind:
    """One number per kernel kind of ``edgedet.space.cost.Kernel``."""

    conv: float  # dense convs: 1x1 expand/project, the stem, a skip's 1x1
    gconv: float  # grouped 1x1 convs (the ``_g2`` ops; their overhead also carries the channel shuffle)
    dwconv: float  # depthwise kxk convs
    add: float  # residual adds

    def __getitem__(self, kind: str) -> float:
        return float(getattr(self, kind))


KINDS = tuple(f.name for f in fields(PerKind))


@dataclass(frozen=True)
class AnalyticModel:
    """Roofline latency for one device at one precision; implements ``edgedet.devices.latency.LatencyModel``."""

    precision: str
    peak_gflops: float  # peak arithmetic rate at this precision, GFLOP/s (one MAC = two FLOPs)
    bandwidth_gbs: float  # attainable DRAM bandwidth, GB/s
    efficiency: PerKind  # fraction of peak each kernel kind reaches, in (0, 1]
    kernel_overhead_ms: PerKind  # fixed cost of launching one kernel of each kind
    layer_overhead_ms: float  # fixed cost of a searchable layer (or the stem) that runs at least one kernel
    model_overhead_ms: float  # fixed cost of one inference: session run, input/output copies

    def kernel_ms(self, kernel: Kernel) -> float:
        """One kernel: the slower of compute and memory, plus its launch overhead."""
        compute_ms = 2 * kernel.macs / (self.peak_gflops * self.efficiency[kernel.kind] * 1e6)
        moved = (kernel.in_elems + kernel.out_elems + kernel.params) * BYTES_PER_ELEMENT[self.precision]
        return max(compute_ms, moved / (self.bandwidth_gbs * 1e6)) + self.kernel_overhead_ms[kernel.kind]

    def kernels_ms(self, kernels: list[Kernel]) -> float:
        """A unit of work that runs ``kernels`` (a layer, the stem): their sum plus the per-layer overhead."""
        if not kernels:
            return 0.0
        return self.layer_overhead_ms + sum(self.kernel_ms(k) for k in kernels)

    def layer_ms(self, op: str, layer: LayerShape) -> float:
        """Candidate ``op`` at ``layer``; an identity skip runs no kernel and costs nothing."""
        return self.kernels_ms(op_kernels(op, layer))

    def fixed_ms(self, space: SearchSpace, imgsz: int) -> float:
        """What every architecture of ``space`` pays: the stem and the per-inference constant."""
        return self.kernels_ms(stem_kernels(space, imgsz)) + self.model_overhead_ms

    @classmethod
    def from_config(cls, config: Any, *, precision: str, where: str) -> "AnalyticModel":
        """Build from a profile's ``latency.analytic.<precision>`` mapping; errors name ``where`` and the field."""
        if precision not in BYTES_PER_ELEMENT:
            raise UsageError(f"{where}: unknown precision '{precision}'; use one of {', '.join(BYTES_PER_ELEMENT)}")
        scalars = ("peak_gflops", "bandwidth_gbs", "layer_overhead_ms", "model_overhead_ms")
        data = _fields(config, scalars + ("efficiency", "kernel_overhead_ms"), where, "")
        return cls(
            precision=precision,
            peak_gflops=_number(data["peak_gflops"], "peak_gflops", where, positive=True),
            bandwidth_gbs=_number(data["bandwidth_gbs"], "bandwidth_gbs", where, positive=True),
            efficiency=_per_kind(data["efficiency"], "efficiency", where, fraction=True),
            kernel_overhead_ms=_per_kind(data["kernel_overhead_ms"], "kernel_overhead_ms", where, fraction=False),
            layer_overhead_ms=_number(data["layer_overhead_ms"], "layer_overhead_ms", where, positive=False),
            model_overhead_ms=_number(data["model_overhead_ms"], "model_overhead_ms", where, positive=False),
        )


def _fields(config: Any, names: tuple[str, ...], where: str, prefix: str) -> dict[str, Any]:
    """Check that ``config`` is a mapping with exactly ``names``; unknown keys get the closest known name."""
    if not isinstance(config, dict):
        target = f"field '{prefix.rstrip('.')}'" if prefix else "the analytic parameters"
        raise UsageError(f"{where}: {target} must be a mapping with {', '.join(names)}")
    for key in config:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise UsageError(f"{where}: unknown field '{prefix}{key}'{hint}; known: {', '.join(names)}")
    for name in names:
        if name not in config:
            raise UsageError(f"{where}: missing field '{prefix}{name}'")
    return config


def _number(value: Any, name: str, where: str, *, positive: bool, at_most: float = math.inf) -> float:
    """A finite real number (not a bool) that is positive (or non-negative) and at most ``at_most``."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not (number and (value > 0 if positive else value >= 0) and value <= at_most):
        bound = "positive" if positive else "non-negative"
        limit = f" at most {at_most:g}" if at_most < math.inf else ""
        raise UsageError(f"{where}: field '{name}' must be a {bound} number{limit}, got {value!r}")
    return float(value)


def _per_kind(config: Any, name: str, where: str, *, fraction: bool) -> PerKind:
    """A mapping with one number per kernel kind: fractions of peak in (0, 1], or non-negative overheads."""
    data = _fields(config, KINDS, where, f"{name}.")
    at_most = 1.0 if fraction else math.inf
    return PerKind(**{k: _number(data[k], f"{name}.{k}", where, positive=fraction, at_most=at_most) for k in KINDS})

"""The latency-aware search loss: FBNet's ``L_det · α · log(LAT)^β``, defined for every latency, on one device or many.

Expected latency on device d (differentiable in the architecture probabilities ``p``, shape ``(layers, 9)``)::

    LAT_d = fixed_d + Σ_l Σ_i p[l, i] · LUT_d[l, i]          (LUT from ``edgedet.devices.latency.layer_table``)

Several devices (Chu et al., CVPRW 2021): each is divided by its reference architecture's latency (the space's
default ops), ``r_d = LAT_d / REF_d``, so a 2 ms GPU and a 40 ms CPU weigh alike, then combined,
``R = mean_d r_d`` (average case) or ``max_d r_d`` (worst case). One device: ``R = LAT / REF``.

Normalisation (why not ``log(ms)``): ``log(LAT)^β`` is undefined below 1 in whatever unit LAT is in (a 0.8 ms Jetson
backbone) and its meaning changes with the unit. Here::

    LAT' = e · R / R_floor        R_floor = R of the per-device fastest architectures (each r_d at its minimum)
    log(LAT') = 1 + log(R / R_floor) ≥ 1

Every architecture, and every mixture of them, has ``R ≥ R_floor``, so ``log(LAT')`` is at least 1: defined, with
a bounded slope (``β · log(LAT')^(β-1) ≤ β``; starting at 0 instead of 1 would give ``x^β`` an infinite slope at the
fastest architecture), and unit-free: the factor reads "how many e-folds slower than the fastest possible". The
factor ``α · log(LAT')^β`` runs from α at the fastest architecture upward.

Hard targets: a device with a target ``T_d`` counts its floor at the target instead of at its fastest architecture
(``T_d / REF_d`` in place of ``fastest_d / REF_d``) and ``R / R_floor`` is clamped at 1: below the budget the FBNet
factor does not pull toward faster ops (it stays α), because a user who sets a budget wants the most accurate
backbone within it, not one that trades accuracy for speed nobody asked for. The loss is further multiplied by
``1 + λ · |max_d LAT_d / T_d − 1|``: the tightest budget's use, pulled to 1 from both sides, as TuNAS's absolute
reward does (Bender et al., CVPR 2020). Two-sided because θ's Adam turns every consistent push into a full step: a
one-sided penalty's first pushes carry θ on, well under its target, toward cheap ops nobody asked for
(benchmarks/README.md, "Why the search modules are as they are", has the measurements). The final architecture
meets the targets exactly by budgeted derivation (``edgedet.search.derive``), which also spends at least
``budget_use`` of each budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgedet.devices.latency import LatencyModel, layer_table
from edgedet.errors import UsageError
from edgedet.search.config import OBJECTIVES
from edgedet.space.spaces import OP_NAMES, SearchSpace


@dataclass(frozen=True)
class DeviceLatency:
    """One device's latencies for one space at one input size: what the loss and the derivation read."""

    name: str
    precision: str
    table: np.ndarray  # (layers, 9) ms, inf where the space forbids the op
    fixed_ms: float  # stem and per-model constant: paid by every architecture
    reference_ms: float  # the space's default ops
    target_ms: float | None = None

    @classmethod
    def from_model(cls, name: str, model: LatencyModel, space: SearchSpace, imgsz: int,
                   target_ms: float | None = None) -> "DeviceLatency":
        table = layer_table(model, space, imgsz)
        fixed = model.fixed_ms(space, imgsz)
        reference = fixed + float(table[np.arange(len(table)), [OP_NAMES.index(op) for op in space.default_ops]].sum())
        return cls(name, model.precision, table, fixed, reference, target_ms)

    @property
    def fastest_ms(self) -> float:
        """The fastest architecture's latency: each layer's fastest allowed op."""
        return self.fixed_ms + float(self.table.min(1).sum())

    def predict_ms(self, ops: list[int] | np.ndarray) -> float:
        """Latency of one architecture given as op indices (into ``OP_NAMES``), one per layer."""
        return self.fixed_ms + float(self.table[np.arange(len(self.table)), np.asarray(ops)].sum())


def check_targets(devices: list[DeviceLatency]) -> None:
    """Fail at once, before any training, when a device's target is below its fastest architecture."""
    for device in devices:
        if device.target_ms is not None and device.fastest_ms > device.target_ms:
            raise UsageError(
                f"--target-ms {device.target_ms:g} on '{device.name}' ({device.precision}) is impossible: the fastest "
                f"architecture of this space and input size takes {device.fastest_ms:.3f} ms there"
            )


class LatencyLoss(nn.Module):
    """``loss(det_loss, probs) -> (loss, details)``: the search loss for θ and every term of it, as floats."""

    def __init__(self, devices: list[DeviceLatency], *, objective: str = "mean", alpha: float = 0.2,
                 beta: float = 0.6, target_weight: float = 10.0) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise UsageError(f"--objective {objective}: use mean (average device) or max (worst device)")
        if not devices or len({d.name for d in devices}) < len(devices):
            raise UsageError(f"the latency loss needs distinct devices, got: {', '.join(d.name for d in devices)}")
        self.names = [d.name for d in devices]
        self.objective, self.alpha, self.beta, self.target_weight = objective, alpha, beta, target_weight
        tables = np.stack([d.table for d in devices])  # (D, L, 9)
        self.register_buffer("tables", torch.tensor(np.where(np.isfinite(tables), tables, 0.0), dtype=torch.float32))
        self.register_buffer("fixed", torch.tensor([d.fixed_ms for d in devices], dtype=torch.float32))
        self.register_buffer("reference", torch.tensor([d.reference_ms for d in devices], dtype=torch.float32))
        targets = [math.inf if d.target_ms is None else d.target_ms for d in devices]
        self.register_buffer("targets", torch.tensor(targets, dtype=torch.float32))
        self.targeted = any(d.target_ms is not None for d in devices)
        floors = [(d.fastest_ms if d.target_ms is None else d.target_ms) / d.reference_ms for d in devices]
        self.floor = float(self._combine(torch.tensor(floors, dtype=torch.float64)))

    def _combine(self, ratios: torch.Tensor) -> torch.Tensor:
        return ratios.mean() if self.objective == "mean" else ratios.max()

    def expected_ms(self, probs: torch.Tensor) -> torch.Tensor:
        """(L, 9) probabilities (0 on forbidden ops) -> (D,) expected latency in ms."""
        return self.fixed + (probs[None] * self.tables).sum((1, 2))

    def forward(self, det_loss: torch.Tensor, probs: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        latency = self.expected_ms(probs)  # (D,)
        normalised = (self._combine(latency / self.reference) / self.floor).clamp_min(1.0)  # 1 within the budget
        log_lat = 1.0 + torch.log(normalised)  # = log(e · normalised) ≥ 1
        lat_factor = self.alpha * log_lat.pow(self.beta)
        tightest = (latency / self.targets).max()  # the largest share of a budget used (0 without a target)
        target_factor = 1.0 + self.target_weight * (tightest - 1.0).abs() if self.targeted else latency.new_ones(())
        loss = det_loss * lat_factor * target_factor
        details = {"loss": loss.item(), "loss_det": det_loss.item(), "lat_factor": lat_factor.item(),
                   "target_factor": target_factor.item(), "lat_norm": normalised.item()}
        details |= {f"ms_{name}": value for name, value in zip(self.names, latency.tolist())}
        return loss, details

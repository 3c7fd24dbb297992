"""Deriving the final architecture from θ: argmax, or the most probable architecture within hard latency budgets.

With targets ``T_d`` on some devices this solves, exactly up to a stated resolution::

    maximise  Σ_l log p[l, op_l]    subject to   predicted_ms_d(ops) ≤ T_d   for every targeted device d

by dynamic programming over layers. Each device's latency is split into what every architecture pays (its fastest
ops) and the extra of each op above its layer's fastest; the extra is measured in bins of ``(T_d − fastest_d) / n_d``
and rounded UP, so any architecture the DP accepts is feasible in exact milliseconds. The price of rounding is at
most one bin per layer of slack left unused: the DP can miss an architecture only when it is within
``layers · bin`` ms of a budget. Several devices make the DP table multi-dimensional; ``n_d`` is chosen so that it
holds about ``max_cells`` cells in all (16 layers, one device: ~18,700 bins; two devices: ~135 each).

Spending the budget: the most probable architecture under a cap can sit far below it when θ has barely left the
uniform distribution (a short search on little data). A user who states a budget wants the most accurate backbone
that uses it, so the DP also asks for at least ``budget_use · T_d`` on every targeted device (up to the bin
resolution): it takes the best cell at or above that many bins. When no architecture reaches it (a budget above the
space's slowest architecture, or several devices that disagree), it falls back to the best under the caps alone.
``budget_use = 0`` keeps only the caps.

The pretrained prior: in the ``lite0`` space every candidate inherits from Lite0's ImageNet block at its layer, but
only Lite0's own op inherits exactly; the rest start from approximations, and a short training on little data does
not close that gap. How far each departure starts is measured, not guessed: the relative change of the pretrained
network's features when that one op replaces Lite0's at its layer (``SuperBackbone.departure_costs``).
``departure_scores`` subtracts ``prior`` nats per unit of it from θ's log-probabilities before the derivation, so a
budget buys the departures that disturb the pretrained network least, and θ overrides that only where it learned
more. The cost is graded, not flat, so that the blocks that save most are not dropped whatever they cost the
features; and it is added here, not to θ's start, because the latency loss's pushes would wash a start out during
the search (benchmarks/README.md, "Why the search modules are as they are", has the measurements).

``fastest_at_score`` is the budgeted derivation's dual: the fastest architecture whose score reaches a level, to
compare devices (or precisions) at matched accuracy rather than matched latency.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgedet.devices.latency import LatencyModel, predict_ms
from edgedet.errors import EdgedetError, UsageError
from edgedet.search.latency import DeviceLatency, check_targets
from edgedet.space.archspec import ArchSpec
from edgedet.space.spaces import OP_NAMES, SearchSpace

MAX_CELLS = 300_000


def bins_per_device(layers: int, devices: int, max_cells: int = MAX_CELLS) -> int:
    """Largest n with ``layers · (n + 1)^devices ≤ max_cells`` (at least 1)."""
    return max(1, int((max_cells / layers) ** (1.0 / devices) + 1e-9) - 1)


def _costs(device: DeviceLatency, bins: int) -> np.ndarray:
    """(L, 9) integer cost in bins of each op's extra latency over its layer's fastest, rounded up; ``bins + 1``
    (over any budget) where the op is forbidden or alone exceeds the budget."""
    extra = device.table - device.table.min(1, keepdims=True)  # (L, 9), inf where forbidden
    slack = device.target_ms - device.fastest_ms  # >= 0 after check_targets
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.ceil(extra * (bins / slack)) if slack > 0 else np.where(extra > 0, np.inf, 0.0)
    return np.where(np.isfinite(scaled) & (scaled <= bins), scaled, bins + 1).astype(np.int64)


def _shift(table: np.ndarray, cost: tuple[int, ...]) -> np.ndarray:
    """``out[c] = table[c - cost]``, ``-inf`` where ``c - cost`` falls off the table."""
    out = np.full_like(table, -np.inf)
    out[tuple(slice(k, None) for k in cost)] = table[tuple(slice(0, n - k) for n, k in zip(table.shape, cost))]
    return out


def _used_bins(device: DeviceLatency, bins: int, budget_use: float) -> int:
    """The bins an architecture must use on ``device`` to reach ``budget_use · T`` (0 when that is below fastest)."""
    slack = device.target_ms - device.fastest_ms
    wanted = budget_use * device.target_ms - device.fastest_ms
    return 0 if slack <= 0 or wanted <= 0 else min(bins, int(np.ceil(wanted * bins / slack)))


def derive_ops(log_probs: np.ndarray, devices: list[DeviceLatency], *, budget_use: float = 0.0,
               max_cells: int = MAX_CELLS) -> list[int]:
    """Op index (into ``OP_NAMES``) per layer: the argmax without targets, else the budgeted optimum (see above),
    spending at least ``budget_use`` of every budget where an architecture can.

    ``log_probs`` is ``(L, 9)`` with ``-inf`` on forbidden ops. Raises UsageError when no architecture fits.
    """
    targeted = [d for d in devices if d.target_ms is not None]
    if not targeted:
        return np.argmax(log_probs, 1).tolist()
    check_targets(targeted)
    layers = len(log_probs)
    bins = bins_per_device(layers, len(targeted), max_cells)
    costs = np.stack([_costs(d, bins) for d in targeted], -1)  # (L, 9, D)
    best = np.full((bins + 1,) * len(targeted), -np.inf)  # best score using exactly that many bins per device
    best[(0,) * len(targeted)] = 0.0
    back = np.full((layers, *best.shape), -1, dtype=np.int8)
    for layer in range(layers):
        scores = np.full_like(best, -np.inf)
        for op in np.flatnonzero(np.isfinite(log_probs[layer]) & (costs[layer] <= bins).all(-1)):
            candidate = _shift(best, tuple(costs[layer, op])) + log_probs[layer, op]
            better = candidate > scores
            scores[better], back[layer][better] = candidate[better], op
        best = scores
    floor = tuple(slice(_used_bins(d, bins, budget_use), None) for d in targeted)
    spent = np.full_like(best, -np.inf)
    spent[floor] = best[floor]
    cell = np.unravel_index(np.argmax(spent if np.isfinite(spent).any() else best), best.shape)
    if not np.isfinite(best[cell]):
        fastest = ", ".join(f"{d.name} {d.fastest_ms:.3f} ms" for d in targeted)
        raise UsageError(f"no architecture meets every --target-ms at once (fastest alone: {fastest}); loosen a "
                         "target")
    ops = []
    for layer in reversed(range(layers)):
        op = int(back[layer][cell])
        ops.append(op)
        cell = tuple(int(c - k) for c, k in zip(cell, costs[layer, op]))
    return ops[::-1]


def departure_scores(log_probs: np.ndarray, costs: np.ndarray, prior: float) -> np.ndarray:
    """``log_probs − prior · costs``: θ's log-probabilities less ``prior`` nats per unit of each op's departure cost
    (``(L, 9)``, 0 for the reference op, ``inf`` where forbidden, as ``log_probs`` is ``-inf`` there)."""
    return log_probs - prior * np.where(np.isfinite(costs), costs, 0.0)


def derivation_scores(arch_json: Path, *, theta: bool = True) -> np.ndarray:
    """(L, 9) scores a finished search derived from, rebuilt from its ``arch.json``: θ's log-probabilities (``-inf``
    where an op is not allowed) less the departure-cost prior where it had one, so that other architectures can be
    derived from the same search (another budget, another device) without its checkpoint. ``theta=False`` ignores θ
    (uniform over the allowed ops): the prior alone, the baseline that says what θ added."""
    provenance = ArchSpec.load(arch_json).provenance
    if "theta_probs" not in provenance or "departure_costs" not in provenance:
        raise UsageError(f"{arch_json} has no θ probabilities and departure costs: it is not from an edgedet search "
                         f"of this version; search again into a fresh folder (delete {arch_json.parent})")
    scores = np.full((len(provenance["theta_probs"]), len(OP_NAMES)), -np.inf)
    for layer, probs in enumerate(provenance["theta_probs"]):
        for op, probability in probs.items():
            scores[layer, OP_NAMES.index(op)] = math.log(max(probability, 1e-12))
    if not theta:
        if provenance["departure_costs"] is None:
            raise UsageError(f"{arch_json}: a prior-only derivation needs the departure costs of inherited weights "
                             "(a search of the pretrained lite0 space); this search had none")
        scores = np.where(np.isfinite(scores), 0.0, -np.inf)
    if provenance["departure_costs"] is None:  # no inherited weights: θ alone, as the search's derivation did
        return scores
    costs = np.array([[layer.get(op, math.inf) for op in OP_NAMES] for layer in provenance["departure_costs"]])
    return departure_scores(scores, costs, provenance["config"]["reference_prior"])


def prior_only_arch(arch_json: Path) -> ArchSpec:
    """What the search derives with θ ignored: the departure-cost prior alone under the same devices, targets and
    budget use. Trained beside the searched architecture it measures what θ added."""
    from edgedet.devices.profile import get_profile

    searched = ArchSpec.load(arch_json)
    provenance, space = searched.provenance, searched.search_space
    source = {"source": "prior-only derivation", "search": str(arch_json)}
    if "prior_only" in provenance:  # the search chose an input size for it too (Searcher._choose)
        return replace(ArchSpec.parse(provenance["prior_only"]), provenance=source)
    devices = [DeviceLatency.from_model(row["device"], get_profile(row["device"]).latency_model(row["precision"]),
                                        space, searched.imgsz, row["target_ms"]) for row in provenance["devices"]]
    ops = derive_ops(derivation_scores(arch_json, theta=False), devices,
                     budget_use=provenance["config"]["budget_use"])
    return to_arch(space, searched.imgsz, ops, source)


def ops_score(scores: np.ndarray, ops: list[int]) -> float:
    """An architecture's score: the sum over layers of its ops' scores, what the derivation maximises."""
    return float(scores[np.arange(len(ops)), ops].sum())


def fastest_at_score(scores: np.ndarray, device: DeviceLatency, floor: float) -> list[int]:
    """The fastest architecture on ``device`` whose score reaches ``floor``: devices compared at matched accuracy.
    Found by bisecting the budgeted derivation's budget (the best score within a budget never falls as the budget
    grows), to within the DP's resolution. Raises UsageError when no architecture reaches ``floor``."""
    slowest = device.fixed_ms + float(np.where(np.isfinite(device.table), device.table, 0).max(1).sum())
    low, high = device.fastest_ms, slowest
    best = derive_ops(scores, [replace(device, target_ms=high)])
    if ops_score(scores, best) < floor - 1e-9:
        raise UsageError(f"no architecture scores {floor:.4g}: the best scores {ops_score(scores, best):.4g}")
    for _ in range(30):  # (slowest − fastest) / 2^30: below the DP's own resolution
        middle = (low + high) / 2
        ops = derive_ops(scores, [replace(device, target_ms=middle)])
        if ops_score(scores, ops) >= floor - 1e-9:
            high, best = middle, ops
        else:
            low = middle
    return best


def to_arch(space: SearchSpace, imgsz: int, ops: list[int], provenance: dict[str, Any] | None = None) -> ArchSpec:
    """Op indices (into ``OP_NAMES``) -> ArchSpec."""
    return ArchSpec(space.name, imgsz, tuple(OP_NAMES[i] for i in ops), space.width_mult, provenance or {})


def resolution_scaled(arch: ArchSpec, model: LatencyModel, target_ms: float) -> ArchSpec:
    """``arch``'s own blocks at the input size (a multiple of 32, 64–640) whose predicted latency is nearest
    ``target_ms``: EfficientNet's resolution scaling, the hand-designed way to bring a network to a latency."""
    return min((arch.with_imgsz(size) for size in range(64, 641, 32)),
               key=lambda scaled: abs(predict_ms(model, scaled) - target_ms))


def random_ops_near(table: np.ndarray, fixed_ms: float, target_ms: float, tolerance: float, rng: random.Random,
                    *, max_steps: int = 10_000) -> list[int]:
    """A random architecture whose predicted latency is within ``tolerance`` (a fraction) of ``target_ms``.

    Why a walk and not rejection sampling: uniform draws cluster around the space's middle latency, so a target near
    either end is almost never hit. Start from a uniform draw; while outside the band, give a random layer a random
    op that moves the latency toward the target. ``table`` is ``(L, 9)`` ms with ``inf`` on forbidden ops.
    """
    allowed = [np.flatnonzero(np.isfinite(row)).tolist() for row in table]
    ops = [rng.choice(options) for options in allowed]
    for _ in range(max_steps):
        gap = target_ms - (fixed_ms + sum(table[layer, op] for layer, op in enumerate(ops)))
        if abs(gap) <= tolerance * target_ms:
            return ops
        layer = rng.randrange(len(ops))
        closer = [op for op in allowed[layer] if (table[layer, op] - table[layer, ops[layer]]) * gap > 0]
        if closer:
            ops[layer] = rng.choice(closer)
    raise EdgedetError(f"no random architecture found within {tolerance:.0%} of {target_ms:.3f} ms in {max_steps} "
                       "steps; widen the tolerance")

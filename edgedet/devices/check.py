"""How well a measured LUT predicts whole backbones: sample random architectures, time them, compare.

Whole models are timed with the same interleaved-reference protocol as the LUT, so the comparison is between
speed-normalised latencies (ratios to the reference, expressed in ms at the reference's current speed). Models
under ``ABS_TOL_MS / 0.1`` get an absolute tolerance instead of ±10%: their timing noise is not proportional.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import spearmanr

from edgedet.devices.builder import backbone_model, runtime_id, timed
from edgedet.devices.latency import LatencyLUT, predict_ms
from edgedet.devices.profile import SHIPPED_DIR, DeviceProfile
from edgedet.devices.timing import Timed, time_interleaved
from edgedet.errors import UsageError
from edgedet.io import atomic_write_text
from edgedet.progress import progress_steps, progress_track
from edgedet.runtime.session import choose_providers, make_session
from edgedet.space.archspec import ArchSpec, sample_arch
from edgedet.space.cost import op_kernels, stem_kernels, total

ABS_TOL_MS = 0.25


@dataclass
class CheckRow:
    arch: str
    predicted_ms: float
    measured_ms: float
    macs: int

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.predicted_ms - self.measured_ms) / self.measured_ms

    @property
    def within_10pct(self) -> bool:
        return abs(self.predicted_ms - self.measured_ms) <= max(0.10 * self.measured_ms, ABS_TOL_MS)


def arch_macs(arch: ArchSpec) -> int:
    kernels = stem_kernels(arch.search_space, arch.imgsz)
    for op, layer in zip(arch.ops, arch.layers()):
        kernels += op_kernels(op, layer)
    return total(kernels)[0]


def _reference(lut: LatencyLUT, space: str | None) -> tuple[ArchSpec, float]:
    if not lut.reference:
        raise UsageError(f"{lut.path}: LUT has no reference model; rebuild it with `edgedet profile build`")
    key = next((k for k in lut.reference if space is None or k.startswith(f"{space}@")), None)
    if key is None:
        raise UsageError(f"{lut.path}: LUT was not built for space '{space}' (it has: {', '.join(lut.reference)})")
    return ArchSpec.parse(lut.reference[key]["arch"]), float(lut.reference[key]["ms"])


def check_profile(profile: DeviceProfile, *, samples: int = 50, precision: str | None = None,
                  space: str | None = None, rounds: int = 10, seed: int = 1) -> tuple[list[CheckRow], float]:
    """Predicted vs measured latency of ``samples`` random backbones here, and the machine's speed now vs at build."""
    if profile.latency["source"] != "lut":
        raise UsageError(f"device '{profile.id}' has an analytic model, not a LUT measured here: "
                         "`profile check` times models on this machine, so check a profile built here")
    lut = profile.latency_model(precision)
    assert isinstance(lut, LatencyLUT)
    threads = int(lut.provenance.get("threads", profile.threads))
    provider = lut.provenance.get("provider", "cpu")
    if lut.runtime != runtime_id(threads, provider):
        raise UsageError(f"{lut.path}: runtime '{lut.runtime}' cannot be timed here (this machine runs "
                         f"'{runtime_id(threads, provider)}')")
    _, providers = choose_providers(provider, profile.runtime.get("trt"))  # one line if this machine lacks it
    reference, reference_ms_at_build = _reference(lut, space)
    rng = random.Random(seed)
    archs = [sample_arch(reference.search_space, reference.imgsz, rng) for _ in range(samples)]
    models = timed(((str(a), backbone_model(a, lut.precision)) for a in progress_track(archs, "exporting samples")),
                   threads, providers)
    ref = Timed(make_session(backbone_model(reference, lut.precision), threads=threads, providers=providers))
    with progress_steps(f"timing {samples} backbones x {rounds} rounds", rounds) as advance_to:
        result = time_interleaved(models, ref, rounds=rounds, seed=seed, on_round=advance_to)
    speed = result.reference_ms / reference_ms_at_build  # how much slower the machine is now than at build time
    return [CheckRow(str(a), predict_ms(lut, a) * speed, result.ms(str(a)), arch_macs(a)) for a in archs], speed


def summarize(rows: list[CheckRow], speed: float) -> dict[str, float]:
    """The flat numbers ``--json-out`` writes; ``flops_spearman`` shows how well MACs alone would rank them."""
    errors = np.array([abs(r.error_pct) for r in rows])
    measured = [r.measured_ms for r in rows]
    return {
        "samples": len(rows),
        "within_10pct": float(np.mean([r.within_10pct for r in rows])),
        "spearman": float(spearmanr([r.predicted_ms for r in rows], measured)[0]),
        "flops_spearman": float(spearmanr([r.macs for r in rows], measured)[0]),
        "mean_abs_pct_error": float(errors.mean()),
        "max_abs_pct_error": float(errors.max()),
        "median_measured_ms": float(np.median(measured)),
        "slowdown_vs_build": speed,
    }


def record_check(profile: DeviceProfile, precision: str, summary: dict[str, float]) -> bool:
    """Write the check's figures into a profile built here (``expected_error`` then says what was measured, not
    "unchecked"); a shipped profile is left as it is. Whether it was written."""
    if profile.path is None or profile.path.resolve().is_relative_to(SHIPPED_DIR.resolve()):
        return False
    checks = profile.latency.setdefault("checks", {})
    checks[precision] = {"date": datetime.date.today().isoformat()} | {
        key: round(summary[key], 4) for key in ("samples", "within_10pct", "mean_abs_pct_error", "max_abs_pct_error",
                                                "spearman")}
    profile.latency["expected_error"] = "; ".join(
        f"{p} (checked {c['date']}, {c['samples']} random backbones): {c['within_10pct']:.0%} within ±10%, mean "
        f"|error| {c['mean_abs_pct_error']:.1f}%, max {c['max_abs_pct_error']:.1f}%, Spearman {c['spearman']:.3f}"
        for p, c in sorted(checks.items()))
    atomic_write_text(profile.path, profile.to_yaml())
    return True


def rows_json(rows: list[CheckRow]) -> list[dict]:
    return [asdict(r) | {"error_pct": r.error_pct} for r in rows]

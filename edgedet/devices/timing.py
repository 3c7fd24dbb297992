"""Timing ONNX models in ONNX Runtime on shared, drifting CPUs: interleave every model with a fixed reference.

Shared vCPUs drift by about ±25% over seconds to minutes, so timings taken in separate passes disagree by more
than the differences a LUT must resolve. Here each round times, for every model, a short burst of the reference
and then a short burst of the model; the ratio of the two medians cancels the drift, and the median over rounds
cancels the rest. Latency is reported as ratio x the reference's median over the whole session. Torch-free.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from edgedet.runtime.session import random_feed

BURST_MS = 15.0  # long enough to average a burst, short enough that the machine's speed holds still


class Timed:
    """A session with its input, run back to back to time it."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.feed = random_feed(session)

    def run_ms(self, runs: int) -> float:
        """Median of ``runs`` single-inference times, in ms."""
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self.session.run(None, self.feed)
            times.append(time.perf_counter() - start)
        return float(np.median(times)) * 1e3


@dataclass
class InterleavedResult:
    ratios: dict[str, float]  # each model's median latency ratio to the reference
    reference_ms: float  # the reference's median latency over the session

    def ms(self, key: str) -> float:
        return self.ratios[key] * self.reference_ms


def _burst_runs(timed: Timed) -> int:
    once = timed.run_ms(3)
    return int(np.clip(BURST_MS / max(once, 1e-3), 2, 200))


def time_interleaved(models: dict[str, Timed], reference: Timed, *, rounds: int = 15, seed: int = 0,
                     on_round: Callable[[int], None] | None = None) -> InterleavedResult:
    """Time every model against ``reference`` in alternating bursts, ``rounds`` times in a shuffled order."""
    reference.run_ms(10)  # warm-up
    ref_runs = _burst_runs(reference)
    runs = {key: _burst_runs(timed) for key, timed in models.items()}
    per_round: dict[str, list[float]] = {key: [] for key in models}
    reference_ms: list[float] = []
    order = list(models)
    shuffler = random.Random(seed)
    for round_index in range(rounds):
        shuffler.shuffle(order)
        for key in order:
            ref = reference.run_ms(ref_runs)
            per_round[key].append(models[key].run_ms(runs[key]) / ref)
            reference_ms.append(ref)
        if on_round:
            on_round(round_index + 1)
    ratios = {key: float(np.median(values)) for key, values in per_round.items()}
    return InterleavedResult(ratios, float(np.median(reference_ms)))

"""The ``edgedet benchmark`` table: ``benchmark_models`` rows at every thread count, beside each model's
LUT-predicted backbone latency on a device profile, as flat dicts and a rich table. Torch-free."""

from __future__ import annotations

import functools
from dataclasses import asdict
from pathlib import Path

from rich.table import Table

from edgedet.errors import EdgedetError, UsageError
from edgedet.evaluate.images import split_images
from edgedet.runtime.benchmark import BenchRow, benchmark_models, peak_rss_mb, read_images
from edgedet.runtime.peers import split_spec
from edgedet.runtime.session import Providers


@functools.cache
def _predicted_backbone_ms(device: str, arch: str | None, precision: str) -> tuple[float | None, str | None]:
    """The LUT/analytic prediction for the model's backbone on ``device``, or why there is none."""
    if arch is None:
        return None, None
    from edgedet.devices.latency import predict_ms
    from edgedet.devices.profile import get_profile
    from edgedet.space.archspec import ArchSpec

    try:
        profile = get_profile(device)
        return predict_ms(profile.latency_model(precision), ArchSpec.parse(arch)), None
    except EdgedetError as err:
        return None, f"no {device} {precision} prediction: {err}"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def benchmark_table(models: list[str | Path], *, device: str, threads: list[int], runs: int, warmup: int,
                    data: Path, provider: str = "cpu", providers: Providers | None = None
                    ) -> tuple[list[dict], Table, list[str]]:
    """Every model at every thread count in one run, on ``providers`` (named ``provider``); rows as flat dicts, the
    table, and notes to print."""
    for model in models:
        if split_spec(model)[0].suffix != ".onnx":
            raise UsageError(f"{model}: benchmark takes .onnx models (export a checkpoint with `edgedet export`)")
    images = read_images(split_images(data, "val"), 20)
    rows: list[BenchRow] = []
    for count in threads:
        rows += benchmark_models(models, threads=count, runs=runs, warmup=warmup, images=images,
                                 providers=providers)
    table = Table("model", "prec", "thr", "median ms", "p90", "p99", "fps", "pre ms", "post ms", "e2e ms",
                  "LUT backbone ms", "mem MB", "size MB",
                  title=f"ONNX Runtime latency on {provider}, batch 1 ({runs} runs each)")
    out, notes = [], set()
    for row in rows:
        predicted, why = _predicted_backbone_ms(device, row.arch, row.precision)
        if why:
            notes.add(why)
        table.add_row(row.model, row.precision, str(row.threads), _fmt(row.median_ms), _fmt(row.p90_ms),
                      _fmt(row.p99_ms), f"{row.throughput_fps:.1f}", _fmt(row.pre_ms), _fmt(row.post_ms),
                      _fmt(row.end_to_end_ms), _fmt(predicted), f"{row.memory_mb:.0f}", f"{row.size_mb:.2f}")
        out.append(asdict(row) | {"end_to_end_ms": row.end_to_end_ms, "predicted_backbone_ms": predicted,
                                  "device": device, "provider": provider})
    notes_list = sorted(notes) + [f"peak process memory {peak_rss_mb():.0f} MB; the LUT predicts the backbone "
                                  "alone (neck and head are not in it) at the profile's thread count"]
    return out, table, notes_list

"""The search's cost and behaviour (issue 5), in one command; benchmarks/README.md has the results and what they mean:

    python benchmarks/search.py [--data ../shared/datasets/coco-mini] [--parts cost,modes,targets,devices,signal]

- cost: the default search (``edgedet search --device jetson``) in a child process: wall and CPU minutes, peak
  memory, every logged number finite; beside FBNet's 216 GPU-hours on ImageNet.
- modes: seconds per training step and peak memory of the single-path supernet and of the full mixture.
- targets: searches for this machine (profile ``host``, measured here on first use) at ``--fractions`` of Lite0's
  fp32 latency; LUT-predicted and measured latency of each. A tighter target must give a faster backbone.
- devices: fp32 vs int8 here, each architecture measured in both: one search per precision without a target, and at
  matched accuracy the fastest architecture per precision whose score (from one β = 0 search) reaches the score of
  the best fp32 one within each of ``--matched-fractions`` of Lite0's latency. Each should be faster on its own.
- signal: |mean| / std over θ batches of the detection loss's gradient on θ at the end of ``--signal-run``, single
  path and mixture; Adam steps of about its learning rate accumulate a signal-to-noise of about ratio · √steps.

The searched backbone trained against hand-designed and random ones at one latency is benchmarks/search_matched.py.

Each part prints a table, writes ``<--out>/<part>.json`` and is skipped when that exists (``--redo``). Searches
(``runs/search/bench-*/``) resume when interrupted and are reused only while their settings are the same.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import resource
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from _common import console, parser_with_common, redo_unless_same, run_child, run_part
from rich.table import Table
from train_throughput import images_per_second, random_batch  # benchmarks/ is the script's folder

from edgedet.devices.builder import cpu_name, get_or_build_profile, measure_backbones
from edgedet.devices.latency import LatencyModel, predict_ms
from edgedet.search.derive import derivation_scores, derive_ops, fastest_at_score, ops_score, to_arch
from edgedet.search.latency import DeviceLatency
from edgedet.search.loop import SearchConfig, Searcher, SearchResult, search
from edgedet.search.supernet import Supernet
from edgedet.space import ArchSpec, get_space
from edgedet.train.checkpoint import read_checkpoint

HOST = "host"  # this machine's profile: its LUTs are measured here on first use, so predictions match what we time
PRECISIONS = ("fp32", "int8")
FBNET_GPU_HOURS = 216  # FBNet's search on ImageNet (Wu et al. 2019)


def _all_finite(log: Path) -> bool:
    with log.open() as handle:
        rows = list(csv.DictReader(handle))
    numbers = [value for row in rows for key, value in row.items() if key != "phase" and value]
    return bool(rows) and all(math.isfinite(float(value)) for value in numbers)


def _lut(precision: str) -> LatencyModel:
    """This machine's lite0@320 latencies in ``precision``, measured the first time they are asked for; a host
    profile measured on another CPU (a copied runs/ folder) would compare that CPU's predictions with our timings."""
    profile = get_or_build_profile(HOST, get_space("lite0"), 320, precision)
    if profile.hardware.get("cpu") != cpu_name():
        raise SystemExit(f"{profile.path} was measured on {profile.hardware.get('cpu')}, not on this machine's "
                         f"{cpu_name()}: delete {profile.path.parent} to measure this one")
    return profile.latency_model(precision)


def cost(args: argparse.Namespace) -> dict[str, Any]:
    """One whole search, timed from its start: a finished or half-done run from before is searched again."""
    run = Path("runs/search/bench-cost")
    shutil.rmtree(run, ignore_errors=True)
    usage = run_child(["search", "--device", "jetson", "--data", str(args.data)], run)
    derived = json.loads((run / "arch.json").read_text())
    provenance = derived["provenance"]
    return {"command": "edgedet search --device jetson --data " + str(args.data), **usage,
            "search_min": provenance["search_s"] / 60,
            "all_finite": _all_finite(run / "log.csv"),
            "epochs": provenance["epochs_done"], "arch": derived["arch"], "argmax": provenance["argmax"],
            "theta_vs_prior_only": provenance.get("theta_vs_prior_only"),
            "predicted_ms_jetson": provenance["devices"][0]["predicted_ms"], "fbnet_gpu_hours": FBNET_GPU_HOURS}


def modes(args: argparse.Namespace) -> dict[str, Any]:
    """Single path first, then the mixture: the process's peak RSS after each is that mode's peak."""
    images, targets = random_batch(args.batch, 320, 80)
    out: dict[str, Any] = {"batch": args.batch, "imgsz": 320}
    for mode in ("single", "mixture"):
        model = Supernet(get_space("lite0"), 320, 80, mode=mode).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        times = [args.batch / images_per_second(model, optimizer, images, targets, 1) for _ in range(args.steps + 1)]
        out[f"{mode}_s_per_step"] = sorted(times[1:])[len(times[1:]) // 2]  # the first step warms up
        out[f"{mode}_peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        del model, optimizer
    out["mixture_over_single"] = out["mixture_s_per_step"] / out["single_s_per_step"]
    return out


def _search(name: str, args: argparse.Namespace, precision: str, target_ms: float | None,
            beta: float = SearchConfig.beta) -> SearchResult:
    run = Path("runs/search") / name
    config = SearchConfig(devices=[HOST], precision=precision, target_ms=[] if target_ms is None else [target_ms],
                          data=str(args.data), imgsz=320, epochs=args.sweep_epochs, warmup_epochs=1, beta=beta)
    redo_unless_same(run, {k: v for k, v in asdict(config).items() if k not in ("workers", "device")})
    return search(config, run, resume=(run / "last.pt").exists())


def targets(args: argparse.Namespace) -> dict[str, Any]:
    lut = _lut("fp32")
    lite0 = predict_ms(lut, ArchSpec.default("lite0", 320))
    archs = {f: _search(f"bench-target-{f}", args, "fp32", f * lite0).arch for f in args.fractions}
    measured = measure_backbones({str(f): a for f, a in archs.items()}, "fp32", rounds=args.rounds)
    rows = [{"fraction": f, "target_ms": f * lite0, "predicted_ms": predict_ms(lut, a), "measured_ms": measured[str(f)],
             "arch": str(a)} for f, a in archs.items()]
    ordered = sorted(rows, key=lambda r: r["target_ms"])
    return {"cpu": cpu_name(), "lite0_ms": lite0, "rows": rows, "epochs": args.sweep_epochs,
            "monotonic_lut": all(a["predicted_ms"] <= b["predicted_ms"] for a, b in zip(ordered, ordered[1:])),
            "monotonic_measured": all(a["measured_ms"] <= b["measured_ms"] for a, b in zip(ordered, ordered[1:])),
            "within_target": all(r["predicted_ms"] <= r["target_ms"] for r in rows)}


def _cross(archs: dict[str, ArchSpec], rounds: int) -> dict[str, Any]:
    """Both architectures (keyed by the precision each was found for) predicted in both precisions, and measured
    when they differ (one architecture found for both is no comparison)."""
    differ = archs["fp32"].ops != archs["int8"].ops
    out: dict[str, Any] = {"archs": {p: str(a) for p, a in archs.items()}, "differ": differ}
    for precision in PRECISIONS:
        lut = _lut(precision)
        measured = measure_backbones(archs, precision, rounds=rounds) if differ else {}
        for found_for, arch in archs.items():
            out[f"{found_for}_arch_on_{precision}_predicted_ms"] = predict_ms(lut, arch)
            out[f"{found_for}_arch_on_{precision}_measured_ms"] = measured.get(found_for)
    out["each_faster_on_its_own"] = differ and (
        out["fp32_arch_on_fp32_measured_ms"] < out["int8_arch_on_fp32_measured_ms"]
        and out["int8_arch_on_int8_measured_ms"] < out["fp32_arch_on_int8_measured_ms"])
    return out


def devices(args: argparse.Namespace) -> dict[str, Any]:
    space = get_space("lite0")
    luts = {p: DeviceLatency.from_model(p, _lut(p), space, 320) for p in PRECISIONS}  # checked before searches use them
    free = _cross({p: _search(f"bench-free-{p}", args, p, None).arch for p in PRECISIONS}, args.rounds)
    scores = derivation_scores(_search("bench-accuracy", args, "fp32", None, beta=0.0).path)
    matched = []
    for fraction in args.matched_fractions:
        fp32 = luts["fp32"]
        floor = ops_score(scores, derive_ops(scores, [replace(fp32, target_ms=fraction * fp32.reference_ms)]))
        archs = {p: to_arch(space, 320, fastest_at_score(scores, lut, floor)) for p, lut in luts.items()}
        matched.append({"fraction": fraction, "score": floor, **_cross(archs, args.rounds)})
    differing = [row for row in matched if row["differ"]]
    return {"cpu": cpu_name(), "epochs": args.sweep_epochs, "rounds": args.rounds, "free": free, "matched": matched,
            "free_differ": free["differ"], "free_each_faster_on_its_own": free["each_faster_on_its_own"],
            "matched_levels": len(matched), "matched_levels_differ": len(differing),
            "matched_each_faster": sum(row["each_faster_on_its_own"] for row in differing),
            "matched_each_faster_on_its_own": bool(differing) and all(row["each_faster_on_its_own"]
                                                                      for row in differing)}


def signal(args: argparse.Namespace) -> dict[str, Any]:
    state = read_checkpoint(args.signal_run / "last.pt")
    searcher = Searcher(SearchConfig.from_dict(state["config"] | {"workers": 0}), args.out / "signal-run")
    searcher.model.load_state_dict(state["model"])
    searcher.model.temperature = state["history"][-1]["temperature"]  # where the search ended
    steps = sum(len(searcher.theta_loader) for row in state["history"] if row["phase"] == "search")
    out: dict[str, Any] = {"run": str(args.signal_run), "theta_steps": steps}
    for path in ("single", "mixture"):
        grads = searcher.detection_theta_gradients(path)  # (batches, allowed θ entries)
        ratio = (grads.mean(0).abs() / grads.std(0)).numpy()
        median = float(np.median(ratio))
        out |= {f"{path}_batches": len(grads), f"{path}_median_ratio": median,
                f"{path}_share_above_1": float((ratio > 1).mean()), f"{path}_accumulated": median * math.sqrt(steps)}
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def show(part: str, result: dict[str, Any]) -> None:
    if part == "targets":
        table = Table("target (x Lite0)", "target ms", "LUT ms", "measured ms", "architecture",
                      title=f"--target-ms sweep on {result['cpu']} fp32 ({result['epochs']} epochs each)")
        for row in result["rows"]:
            table.add_row(*(f"{row[key]:.2f}" for key in ("fraction", "target_ms", "predicted_ms", "measured_ms")),
                          row["arch"])
    elif part == "devices":
        table = Table("comparison", "found for", "fp32 measured (LUT) ms", "int8 measured (LUT) ms", "architecture",
                      title=f"{result['cpu']} fp32 vs int8 ({result['epochs']}-epoch searches, "
                            f"{result['rounds']} timing rounds)")
        labelled = [("own search, no target", result["free"])]
        labelled += [(f"score of fp32 {row['fraction']:.2f}x Lite0", row) for row in result["matched"]]
        for label, row in labelled:
            for p in PRECISIONS if row["differ"] else ("fp32",):
                table.add_row(label if p == "fp32" else "", p if row["differ"] else "both", *(
                    f"{_ms(row[f'{p}_arch_on_{q}_measured_ms'])} ({row[f'{p}_arch_on_{q}_predicted_ms']:.2f})"
                    for q in PRECISIONS), row["archs"][p].split(":")[1])
    else:
        table = Table("key", "value", title=part)
        for key, value in result.items():
            table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)


PARTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "cost": cost, "modes": modes, "targets": targets, "devices": devices, "signal": signal}


def main() -> None:
    parser = parser_with_common(__doc__)
    add = parser.add_argument
    add("--parts", default=",".join(PARTS), help="comma-separated subset of " + ", ".join(PARTS))
    add("--sweep-epochs", type=int, default=4, help="epochs of each targets/devices search")
    add("--fractions", type=float, nargs="+", default=[0.75, 0.85, 1.0], help="targets: fractions of Lite0's latency")
    add("--matched-fractions", type=float, nargs="+", default=[round(0.4 + 0.05 * step, 2) for step in range(11)],
        help="devices: score levels, of the best fp32 architecture within these fractions of Lite0's fp32 latency")
    add("--rounds", type=int, default=9, help="targets/devices: interleaved timing rounds per measured backbone")
    add("--batch", type=int, default=8, help="batch of the modes part")
    add("--steps", type=int, default=3, help="timed steps per mode")
    add("--signal-run", type=Path, default=Path("runs/search/bench-cost"), help="the signal part's finished search")
    args = parser.parse_args()
    unknown = set(args.parts.split(",")) - set(PARTS)
    if "matched" in unknown:
        parser.error("the matched part is its own script now: python benchmarks/search_matched.py")
    if unknown:
        parser.error(f"unknown part {sorted(unknown)[0]}: choose from {', '.join(PARTS)}")
    # cost first: a child's peak RSS counts its parent's at the fork, so it must start before modes grows this one
    for part in [part for part in PARTS if part in args.parts.split(",")]:
        run_part(part, args, PARTS[part], show)


if __name__ == "__main__":
    main()

"""The search's evidence (issue 5), in one command; benchmarks/README.md has the results and what they mean:

    python benchmarks/search.py [--data ../shared/datasets/coco-mini] [--parts cost,modes,targets,devices,...]

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
- matched: a ``--target-ms`` search at MobileNetV2-like's latency on ``--matched-device``; it, MobileNetV2-like and
  Lite0 scaled by input size to that latency and ``--random`` random ones each trained (``edgedet train`` in a child,
  every ``--seeds``): AP / AP50, CPU minutes, and the searched one's paired AP gap to each hand-designed one.

Each part writes ``<--out>/<part>.json`` and is skipped when it exists (``--redo``). Searches
(``runs/search/bench-*/``) and trainings (``runs/train/bench-matched-*/``) resume when interrupted and are reused only
while their settings are the same.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from edgedet.devices.builder import cpu_name, get_or_build_profile, measure_backbones
from edgedet.devices.latency import LatencyModel, predict_ms
from edgedet.io import atomic_write_json
from edgedet.pipeline.run import BASELINES
from edgedet.pipeline.stages import matched_random_archs
from edgedet.search.derive import derivation_scores, derive_ops, fastest_at_score, ops_score, resolution_scaled, to_arch
from edgedet.search.latency import DeviceLatency
from edgedet.search.loop import SearchConfig, Searcher, SearchResult, search
from edgedet.search.supernet import Supernet
from edgedet.space import ArchSpec, get_space
from edgedet.stats import over_seeds, paired_gap
from edgedet.train.checkpoint import read_checkpoint
from train_throughput import images_per_second, random_batch  # benchmarks/ is the script's folder

CPU_MIN_PER_MODEL = 15  # the training budget per model on this machine
MATCHED_LR = 1e-3  # the matched trainings' AdamW peak learning rate (runs at another --train-lr keep their own folders)
HOST = "host"  # this machine's profile: its LUTs are measured here on first use, so predictions match what we time
PRECISIONS = ("fp32", "int8")
FBNET_GPU_HOURS = 216  # FBNet's search on ImageNet (Wu et al. 2019)
console = Console()


def _children_usage() -> tuple[float, float]:
    """(CPU seconds, peak RSS in GB of the largest process) over every finished child so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024**2


def _run_child(command: list[str], run: Path) -> dict[str, float]:
    """``edgedet COMMAND`` into the run folder ``run`` (resumed when it holds a last.pt) in a child process: its wall
    and CPU minutes (all of them, not only this process's)."""
    command = [*command, "--name", run.name, *(["--resume"] if (run / "last.pt").exists() else [])]
    console.print("running: edgedet " + " ".join(command))
    cpu_before, start = _children_usage()[0], time.perf_counter()
    subprocess.run([sys.executable, "-m", "edgedet", *command], check=True)
    return {"wall_min": (time.perf_counter() - start) / 60, "cpu_min": (_children_usage()[0] - cpu_before) / 60}


def _all_finite(log: Path) -> bool:
    with log.open() as handle:
        rows = list(csv.DictReader(handle))
    numbers = [value for row in rows for key, value in row.items() if key != "phase" and value]
    return bool(rows) and all(math.isfinite(float(value)) for value in numbers)


def _redo_unless_same(run: Path, wanted: dict[str, Any]) -> None:
    """A run folder is reused (finished, or resumed) only when its config.json has these settings; one made with
    others is deleted so that it is redone, not passed off under the new ones."""
    if not (run / "config.json").exists():
        return
    saved = json.loads((run / "config.json").read_text())
    changed = sorted(key for key, value in wanted.items() if saved.get(key) != value)
    if changed:
        console.print(f"{run}: made with another {', '.join(changed)}; doing it afresh")
        shutil.rmtree(run)


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
    usage = _run_child(["search", "--device", "jetson", "--data", str(args.data)], run)
    provenance = json.loads((run / "arch.json").read_text())["provenance"]
    return {"command": "edgedet search --device jetson --data " + str(args.data), **usage,
            "search_min": provenance["search_s"] / 60, "peak_rss_gb": _children_usage()[1],
            "all_finite": _all_finite(run / "log.csv"),
            "epochs": provenance["epochs_done"], "arch": provenance["argmax"],
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
    _redo_unless_same(run, {k: v for k, v in asdict(config).items() if k not in ("workers", "device")})
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


def _train_child(name: str, arch: ArchSpec, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """``edgedet train`` in a child process (its CPU time counted: all of it unless it resumed); the result is kept
    in the run folder."""
    lr_tag = "" if args.train_lr == MATCHED_LR else f"-lr{args.train_lr:g}"
    run = Path("runs/train") / f"bench-matched-{name}{lr_tag}{f'-seed{seed}' if seed else ''}"
    _redo_unless_same(run, {"arch": str(arch), "imgsz": arch.imgsz, "data": str(args.data),
                            "classes": args.classes.split(","), "epochs": args.train_epochs, "lr": args.train_lr,
                            "seed": seed})
    done = run / "bench.json"
    if done.exists():
        return json.loads(done.read_text())
    usage = _run_child(["train", "--arch", str(arch), "--imgsz", str(arch.imgsz), "--data", str(args.data),
                        "--classes", args.classes, "--epochs", str(args.train_epochs), "--eval-every",
                        str(args.train_epochs), "--lr", str(args.train_lr), "--seed", str(seed),
                        "--json-out", str(run / "final.json")], run)
    final = json.loads((run / "final.json").read_text())
    result = {"arch": str(arch), "AP": final["AP"], "AP50": final["AP50"], **usage}
    atomic_write_json(done, result)
    return result


def matched(args: argparse.Namespace) -> dict[str, Any]:
    lut = get_or_build_profile(args.matched_device).latency_model()
    mbv2 = ArchSpec.parse(BASELINES["mbv2"].arch)
    target = round(args.matched_ms or predict_ms(lut, mbv2), 4)
    tag = f"-{target:g}ms" if args.matched_ms else ""  # runs at another latency keep their own folders
    run = Path(f"runs/search/bench-matched{tag}")
    if not (run / "arch.json").exists():
        _run_child(["search", "--device", args.matched_device, "--target-ms", str(target), "--data", str(args.data),
                    "--classes", args.classes], run)
    searched = json.loads((run / "arch.json").read_text())
    search_out = {"arch": searched["arch"], "devices": searched["provenance"]["devices"]}
    archs = {"searched": ArchSpec.parse(searched["arch"]), "mbv2": resolution_scaled(mbv2, lut, target),
             "lite0_scaled": resolution_scaled(ArchSpec.default("lite0"), lut, target),
             **{name: ArchSpec.parse(a) for name, a in matched_random_archs(search_out, args.random, 5.0).items()}}
    close = ("searched", "lite0_scaled")  # the pair whose gap needs the most seeds: --close-seeds trains them more
    rows = [{"model": name, "arch": str(arch), "predicted_ms": predict_ms(lut, arch),
             **over_seeds({seed: _train_child(name + tag, arch, args, seed)
                           for seed in args.seeds + (args.close_seeds if name in close else [])})}
            for name, arch in archs.items()]
    by_name = {row["model"]: row for row in rows}
    randoms = [row["AP"] for row in rows if row["model"].startswith("random")]
    ap, random_median = by_name["searched"]["AP"], float(np.median(randoms))
    gaps = {f"{key}_{name}": value for name in ("mbv2", "lite0_scaled")
            for key, value in paired_gap(by_name["searched"], by_name[name]).items()}
    return {"device": args.matched_device, "target_ms": target, "classes": args.classes,
            "train_epochs": args.train_epochs, "train_lr": args.train_lr, "seeds": args.seeds,
            "close_seeds": args.close_seeds, "rows": rows,
            "AP": ap, "AP50": by_name["searched"]["AP50"], **gaps,
            "random_median_AP": random_median, "beats_random_median": ap > random_median,
            "within_5pct": all(abs(row["predicted_ms"] / target - 1) <= 0.05 for row in rows),
            "max_cpu_min": max(row["cpu_min"] for row in rows),
            "within_cpu_budget": all(row["cpu_min"] <= CPU_MIN_PER_MODEL for row in rows)}


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


def _gap_text(result: dict[str, Any], name: str) -> str:
    se = result[f"gap_se_{name}"]
    noise = "" if se is None else f" ± {se:.2f} (s.e., {result[f'paired_seeds_{name}']} paired seeds)"
    return f"searched − {name}: {result[f'gap_{name}']:+.2f} AP{noise}: {'a' if result[f'beats_{name}'] else 'no'} win"


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
    elif part == "matched":
        table = Table("model", f"{result['device']} ms", "AP (per seed)", "AP50", "CPU min", "wall min", "architecture",
                      title=f"At {result['target_ms']:.2f} ms on {result['device']}: coco-mini {result['classes']}, "
                            f"{result['train_epochs']} epochs, mean of seeds {result['seeds']}")
        for row in result["rows"]:
            per_seed = ", ".join(f"{ap:.1f}" for ap in row["AP_per_seed"])
            table.add_row(row["model"], f"{row['predicted_ms']:.2f}", f"{row['AP']:.1f} ({per_seed})",
                          f"{row['AP50']:.1f}", f"{row['cpu_min']:.1f}", f"{row['wall_min']:.1f}", row["arch"])
        table.caption = "; ".join(_gap_text(result, name) for name in ("mbv2", "lite0_scaled"))
    else:
        table = Table("key", "value", title=part)
        for key, value in result.items():
            table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)


PARTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "cost": cost, "modes": modes, "targets": targets, "devices": devices, "signal": signal, "matched": matched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--data", type=Path, default=Path("../shared/datasets/coco-mini"))
    add("--parts", default=",".join(PARTS), help="comma-separated subset of " + ", ".join(PARTS))
    add("--sweep-epochs", type=int, default=4, help="epochs of each targets/devices search")
    add("--fractions", type=float, nargs="+", default=[0.75, 0.85, 1.0], help="targets: fractions of Lite0's latency")
    add("--matched-fractions", type=float, nargs="+", default=[round(0.4 + 0.05 * step, 2) for step in range(11)],
        help="devices: score levels, of the best fp32 architecture within these fractions of Lite0's fp32 latency")
    add("--rounds", type=int, default=9, help="targets/devices: interleaved timing rounds per measured backbone")
    add("--batch", type=int, default=8, help="batch of the modes part")
    add("--steps", type=int, default=3, help="timed steps per mode")
    add("--signal-run", type=Path, default=Path("runs/search/bench-cost"), help="the signal part's finished search")
    add("--matched-device", default="jetson", help="profile of the matched part")
    add("--matched-ms", type=float, default=None, help="matched part's latency on that device (default: "
        "MobileNetV2-like's own); the hand-designed backbones are scaled by input size to it (with --out for its JSON)")
    add("--classes", default="person", help="classes of the matched part's search and trainings")
    add("--train-epochs", type=int, default=6,
        help=f"epochs of every matched training (≤ {CPU_MIN_PER_MODEL} CPU-minutes each here)")
    add("--train-lr", type=float, default=MATCHED_LR, help="peak learning rate of every matched training")
    add("--random", type=int, default=3, help="random architectures of the matched part")
    add("--seeds", type=int, nargs="+", default=[0, 1], help="matched: every model trained with each; AP is the mean")
    add("--close-seeds", type=int, nargs="*", default=[], help="matched: more seeds for the searched backbone and "
        "Lite0 scaled only (the close pair); a win must exceed two standard errors of the paired gap")
    add("--redo", action="store_true", help="run parts again even when their JSON exists")
    add("--out", type=Path, default=Path("runs/bench/search"))
    args = parser.parse_args()
    unknown = set(args.parts.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"unknown part {sorted(unknown)[0]}: choose from {', '.join(PARTS)}")
    # cost first: a child's peak RSS counts its parent's at the fork, so it must start before modes grows this one
    for part in [part for part in PARTS if part in args.parts.split(",")]:
        path = args.out / f"{part}.json"
        if path.exists() and not args.redo:
            result = json.loads(path.read_text())
            console.print(f"{part}: done before ({path}); --redo to measure again")
        else:
            result = PARTS[part](args)
            atomic_write_json(path, result)
        try:
            show(part, result)
        except KeyError as missing:
            raise SystemExit(f"{path} has no {missing}: it is from an older benchmark; run this part with --redo")

if __name__ == "__main__":
    main()

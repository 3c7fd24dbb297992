"""The search's evidence (issue 5), in one command:

    python benchmarks/search.py [--data ../shared/datasets/coco-mini] [--parts cost,modes,targets,devices,...]

- cost: the default search (``edgedet search --device jetson --data DATA``: lite0@320, its default epochs) in a
  child process: wall and CPU minutes, peak resident memory, every logged number finite; beside FBNet's 216
  GPU-hours on ImageNet.
- modes: seconds per training step and peak memory of the single-path supernet (the CPU default) and of the full
  mixture of all 9 candidates (the GPU default), same batch.
- targets: searches for this machine (profile ``xeon-2vcpu``, fp32) at three ``--target-ms`` (fractions of Lite0's
  latency); each result's LUT prediction and its latency measured here. A tighter target must give a faster backbone.
- devices: this machine in fp32 and in int8 (FBNet's iPhone X vs Galaxy S8 table), each architecture measured in
  both precisions; each should be faster on its own. Two ways: (1) FBNet's: a search per precision without targets,
  the latency loss alone trading speed on each; the two buy different amounts of network, so this mixes capacity
  with fit. (2) At matched accuracy: one search learns θ from the detection loss alone (β = 0), and for each
  precision the fastest architecture whose score (θ plus the pretrained prior, what the derivation maximises)
  reaches a level; the levels are the best fp32 architectures' within ``--matched-fractions`` of Lite0's fp32 latency.
- signal: how much θ's gradient says per batch at the end of a finished search (``--signal-run``): the detection
  loss's gradient on θ over every θ batch twice (two augmentations), on the single path and on the mixture; per θ
  entry |mean| / std over batches. θ moves by Adam steps of about its learning rate whatever the gradient's size, so
  with a ratio r per batch, n steps accumulate a signal-to-noise of about r·√n.
- matched: the search finds something, at a matched latency on jetson (MobileNetV2-like's, ``--matched-device``):
  ``edgedet search --target-ms`` it on ``--classes``, then the searched backbone, the hand-designed ones at that
  latency (MobileNetV2-like and Lite0, each scaled the EfficientNet way, by input size, to the nearest latency;
  ``--matched-ms`` picks another latency) and
  ``--random`` random ones within 5% are each trained by ``edgedet train`` in a child process with the same short
  recipe (``--train-epochs`` at ``--train-lr``, each of ``--seeds``; ``--close-seeds`` more for the searched
  backbone and Lite0 scaled) and its CPU minutes are counted; coco-mini val AP / AP50 of each, the mean over the
  seeds. The searched backbone beats a hand-designed one only when their paired AP gap exceeds two of its standard
  errors.

Each part writes ``runs/bench/search/<part>.json`` and is skipped when that file exists (``--redo`` runs it again);
its searches live in ``runs/search/bench-*/`` and resume when interrupted (delete a search's folder to search again
with changed code); a training is kept in ``runs/train/bench-matched-*/``. Both are reused only while their settings
(architecture and recipe for a training) are the same; any other is done afresh.
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

from edgedet.devices.builder import measure_backbones
from edgedet.devices.latency import predict_ms
from edgedet.devices.profile import get_profile
from edgedet.io import atomic_write_json
from edgedet.pipeline.run import BASELINES
from edgedet.pipeline.stages import matched_random_archs
from edgedet.search.derive import departure_scores, derive_ops, resolution_scaled, to_arch
from edgedet.search.latency import DeviceLatency
from edgedet.search.loop import THETA_CHUNK, SearchConfig, Searcher, chunks, frozen, search
from edgedet.search.supernet import Supernet
from edgedet.space import ArchSpec, get_space
from edgedet.space.spaces import OP_NAMES
from edgedet.train.checkpoint import read_checkpoint
from train_throughput import random_batch  # benchmarks/ is the script's folder

CPU_MIN_PER_MODEL = 15  # the training budget per model on this machine
MATCHED_LR = 1e-3  # the matched trainings' AdamW peak learning rate (runs at another --train-lr keep their own folders)
HOST = "xeon-2vcpu"  # this machine's measured profile (fp32 and int8 LUTs, lite0@320)
FBNET_GPU_HOURS = 216  # FBNet's search on ImageNet (Wu et al. 2019)
console = Console()


def _children_usage() -> tuple[float, float]:
    """(CPU seconds, peak RSS in GB of the largest process) over every finished child so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024**2


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


def cost(args: argparse.Namespace) -> dict[str, Any]:
    """One whole search, timed from its start: a finished or half-done run from before is searched again."""
    run = Path("runs/search/bench-cost")
    shutil.rmtree(run, ignore_errors=True)
    command = [sys.executable, "-m", "edgedet", "search", "--device", "jetson", "--data", str(args.data),
               "--name", run.name]
    console.print("running: " + " ".join(command[1:]))
    cpu_before, _ = _children_usage()
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    cpu_after, peak_gb = _children_usage()
    provenance = json.loads((run / "arch.json").read_text())["provenance"]
    return {"command": "edgedet search --device jetson --data " + str(args.data), "wall_min": wall / 60,
            "search_min": provenance["search_s"] / 60, "cpu_min": (cpu_after - cpu_before) / 60,
            "peak_rss_gb": peak_gb, "all_finite": _all_finite(run / "log.csv"),
            "epochs": provenance["epochs_done"], "arch": provenance["argmax"],
            "predicted_ms_jetson": provenance["devices"][0]["predicted_ms"], "fbnet_gpu_hours": FBNET_GPU_HOURS}


def modes(args: argparse.Namespace) -> dict[str, Any]:
    """Single path first, then the mixture: the process's peak RSS after each is that mode's peak."""
    images, targets = random_batch(args.batch, 320, 80)
    out: dict[str, Any] = {"batch": args.batch, "imgsz": 320}
    for mode in ("single", "mixture"):
        model = Supernet(get_space("lite0"), 320, 80, mode=mode).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        times = []
        for _ in range(args.steps + 1):  # the first step warms up
            start = time.perf_counter()
            loss = sum(model(images, targets).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
        out[f"{mode}_s_per_step"] = sorted(times[1:])[len(times[1:]) // 2]
        out[f"{mode}_peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        del model, optimizer
    out["mixture_over_single"] = out["mixture_s_per_step"] / out["single_s_per_step"]
    return out


def _search(name: str, args: argparse.Namespace, precision: str, target_ms: float | None,
            beta: float = SearchConfig.beta) -> ArchSpec:
    run = Path("runs/search") / name
    config = SearchConfig(devices=[HOST], precision=precision, target_ms=[] if target_ms is None else [target_ms],
                          data=str(args.data), imgsz=320, epochs=args.sweep_epochs, warmup_epochs=1, beta=beta)
    _redo_unless_same(run, {k: v for k, v in asdict(config).items() if k not in ("workers", "device")})
    return search(config, run, resume=(run / "last.pt").exists()).arch


def _lite0_ms(precision: str) -> float:
    return predict_ms(get_profile(HOST).latency_model(precision), ArchSpec.default("lite0", 320))


def targets(args: argparse.Namespace) -> dict[str, Any]:
    lut, lite0 = get_profile(HOST).latency_model("fp32"), _lite0_ms("fp32")
    archs = {fraction: _search(f"bench-target-{fraction}", args, "fp32", fraction * lite0)
             for fraction in args.fractions}
    measured = measure_backbones({str(f): a for f, a in archs.items()}, "fp32", rounds=args.rounds)
    rows = [{"fraction": f, "target_ms": f * lite0, "predicted_ms": predict_ms(lut, a), "measured_ms": measured[str(f)],
             "arch": str(a)} for f, a in archs.items()]
    ordered = sorted(rows, key=lambda r: r["target_ms"])
    return {"lite0_ms": lite0, "rows": rows, "epochs": args.sweep_epochs,
            "monotonic_lut": all(a["predicted_ms"] <= b["predicted_ms"] for a, b in zip(ordered, ordered[1:])),
            "monotonic_measured": all(a["measured_ms"] <= b["measured_ms"] for a, b in zip(ordered, ordered[1:])),
            "within_target": all(r["predicted_ms"] <= r["target_ms"] for r in rows)}


def _cross(archs: dict[str, ArchSpec], rounds: int) -> dict[str, Any]:
    """Both architectures (keyed by the precision each was found for) predicted in both precisions, and measured
    when they differ (one architecture found for both is no comparison)."""
    differ = archs["fp32"].ops != archs["int8"].ops
    out: dict[str, Any] = {"archs": {p: str(a) for p, a in archs.items()}, "differ": differ}
    for precision in ("fp32", "int8"):
        lut = get_profile(HOST).latency_model(precision)
        measured = measure_backbones(archs, precision, rounds=rounds) if differ else {}
        for found_for, arch in archs.items():
            out[f"{found_for}_arch_on_{precision}_predicted_ms"] = predict_ms(lut, arch)
            out[f"{found_for}_arch_on_{precision}_measured_ms"] = measured.get(found_for)
    out["each_faster_on_its_own"] = differ and (
        out["fp32_arch_on_fp32_measured_ms"] < out["int8_arch_on_fp32_measured_ms"]
        and out["int8_arch_on_int8_measured_ms"] < out["fp32_arch_on_int8_measured_ms"])
    return out


def _theta_scores(arch_json: Path) -> np.ndarray:
    """(layers, 9) log-probabilities of a finished search's θ (``-inf`` where an op is not allowed), plus its
    pretrained prior."""
    data = json.loads(arch_json.read_text())
    scores = np.full((len(data["ops"]), len(OP_NAMES)), -np.inf)
    for layer, probs in enumerate(data["provenance"]["theta_probs"]):
        for op, probability in probs.items():
            scores[layer, OP_NAMES.index(op)] = math.log(max(probability, 1e-12))
    if "departure_costs" not in data["provenance"]:
        raise SystemExit(f"{arch_json} is from an edgedet without departure costs: delete {arch_json.parent} and run "
                         "this part again")
    costs = np.array([[layer.get(op, math.inf) for op in OP_NAMES] for layer in data["provenance"]["departure_costs"]])
    return departure_scores(scores, costs, data["provenance"]["config"]["reference_prior"])  # as its derivation did


def _score(scores: np.ndarray, ops: list[int]) -> float:
    return float(scores[np.arange(len(ops)), ops].sum())


def fastest_at_score(scores: np.ndarray, device: DeviceLatency, floor: float) -> list[int]:
    """The fastest architecture on ``device`` whose score reaches ``floor``: the budgeted derivation's dual, found by
    bisecting the budget (the best score within a budget never falls as the budget grows)."""
    slowest = device.fixed_ms + float(np.where(np.isfinite(device.table), device.table, 0).max(1).sum())
    low, high = device.fastest_ms, slowest
    best = derive_ops(scores, [replace(device, target_ms=high)])
    for _ in range(30):
        middle = (low + high) / 2
        ops = derive_ops(scores, [replace(device, target_ms=middle)])
        if _score(scores, ops) >= floor - 1e-9:
            high, best = middle, ops
        else:
            low = middle
    return best


def devices(args: argparse.Namespace) -> dict[str, Any]:
    free = _cross({p: _search(f"bench-free-{p}", args, p, None) for p in ("fp32", "int8")}, args.rounds)
    _search("bench-accuracy", args, "fp32", None, beta=0.0)
    scores = _theta_scores(Path("runs/search/bench-accuracy/arch.json"))
    space = get_space("lite0")
    luts = {p: DeviceLatency.from_model(p, get_profile(HOST).latency_model(p), space, 320) for p in ("fp32", "int8")}
    matched = []
    for fraction in args.matched_fractions:
        fp32 = luts["fp32"]
        floor = _score(scores, derive_ops(scores, [replace(fp32, target_ms=fraction * fp32.reference_ms)]))
        archs = {p: to_arch(space, 320, fastest_at_score(scores, lut, floor)) for p, lut in luts.items()}
        matched.append({"fraction": fraction, "score": floor, **_cross(archs, args.rounds)})
    differing = [row for row in matched if row["differ"]]
    return {"epochs": args.sweep_epochs, "rounds": args.rounds, "free": free, "matched": matched,
            "free_differ": free["differ"], "free_each_faster_on_its_own": free["each_faster_on_its_own"],
            "matched_levels": len(matched),
            "matched_levels_differ": len(differing),
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
    command = [sys.executable, "-m", "edgedet", "train", "--arch", str(arch), "--imgsz", str(arch.imgsz),
               "--data", str(args.data), "--classes", args.classes, "--epochs", str(args.train_epochs),
               "--eval-every", str(args.train_epochs), "--lr", str(args.train_lr), "--seed", str(seed),
               "--name", run.name,
               "--json-out", str(run / "final.json"), *(["--resume"] if (run / "last.pt").exists() else [])]
    console.print("running: " + " ".join(command[1:]))
    cpu_before, _ = _children_usage()
    start = time.perf_counter()
    subprocess.run(command, check=True)
    final = json.loads((run / "final.json").read_text())
    result = {"arch": str(arch), "AP": final["AP"], "AP50": final["AP50"],
              "wall_min": (time.perf_counter() - start) / 60, "cpu_min": (_children_usage()[0] - cpu_before) / 60}
    atomic_write_json(done, result)
    return result


def _over_seeds(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """AP and AP50 averaged over the seeds (each seed's kept), the largest CPU and wall time of one training."""
    results = list(runs.values())
    return {"AP": float(np.mean([r["AP"] for r in results])), "AP50": float(np.mean([r["AP50"] for r in results])),
            "seeds": list(runs), "AP_per_seed": [r["AP"] for r in results],
            "cpu_min": max(r["cpu_min"] for r in results), "wall_min": max(r["wall_min"] for r in results)}


def paired_gap(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """AP gap (ours − theirs) over the seeds both trained, and its standard error. One model's AP moves between
    seeds by more than the gaps in question, so a win counts only beyond two standard errors (with one seed there
    is no noise estimate and the plain gap decides)."""
    theirs_by_seed = dict(zip(theirs["seeds"], theirs["AP_per_seed"]))
    gaps = np.array([ap - theirs_by_seed[seed] for seed, ap in zip(ours["seeds"], ours["AP_per_seed"])
                     if seed in theirs_by_seed])
    se = float(gaps.std(ddof=1) / math.sqrt(len(gaps))) if len(gaps) > 1 else None
    return {"gap": float(gaps.mean()), "gap_se": se, "paired_seeds": len(gaps),
            "beats": bool(gaps.mean() > 2 * (se or 0.0))}


def matched(args: argparse.Namespace) -> dict[str, Any]:
    lut = get_profile(args.matched_device).latency_model()
    mbv2 = ArchSpec.parse(BASELINES["mbv2"].arch)
    target = round(args.matched_ms or predict_ms(lut, mbv2), 4)
    tag = f"-{target:g}ms" if args.matched_ms else ""  # runs at another latency keep their own folders
    run = Path(f"runs/search/bench-matched{tag}")
    if not (run / "arch.json").exists():
        command = [sys.executable, "-m", "edgedet", "search", "--device", args.matched_device, "--target-ms",
                   str(target), "--data", str(args.data), "--classes", args.classes, "--name", run.name,
                   *(["--resume"] if (run / "last.pt").exists() else [])]
        console.print("running: " + " ".join(command[1:]))
        subprocess.run(command, check=True)
    searched = json.loads((run / "arch.json").read_text())
    search_out = {"arch": searched["arch"], "devices": searched["provenance"]["devices"]}
    archs = {"searched": ArchSpec.parse(searched["arch"]), "mbv2": resolution_scaled(mbv2, lut, target),
             "lite0_scaled": resolution_scaled(ArchSpec.default("lite0"), lut, target),
             **{name: ArchSpec.parse(a) for name, a in matched_random_archs(search_out, args.random, 5.0).items()}}
    close = ("searched", "lite0_scaled")  # the pair whose gap needs the most seeds: --close-seeds trains them more
    rows = [{"model": name, "arch": str(arch), "predicted_ms": predict_ms(lut, arch),
             **_over_seeds({seed: _train_child(name + tag, arch, args, seed)
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
    config = SearchConfig.from_dict(state["config"] | {"workers": 0})
    searcher = Searcher(config, args.out / "signal-run")
    searcher.model.load_state_dict(state["model"])
    searcher.model.train()
    searcher.model.temperature = state["history"][-1]["temperature"]  # where the search ended
    backbone = searcher.model.backbone
    out: dict[str, Any] = {"run": str(args.signal_run), "theta_steps": sum(len(searcher.theta_loader)
                           for row in state["history"] if row["phase"] == "search")}
    for path in ("single", "mixture"):
        grads = []
        for repeat in range(2):
            searcher.theta_loader.generator.manual_seed(repeat)
            for images, targets in searcher.theta_loader:
                backbone.theta.grad = None
                with frozen(searcher.weights), backbone.path(path):  # the detection loss's gradient alone
                    for piece, piece_targets, share in chunks(images, targets, THETA_CHUNK):
                        (sum(searcher.model(piece, piece_targets).values()) * share).backward()
                grads.append(backbone.theta.grad[backbone.mask].clone())
        stacked = torch.stack(grads)  # (batches, allowed θ entries)
        ratio = (stacked.mean(0).abs() / stacked.std(0)).numpy()
        out |= {f"{path}_batches": len(grads), f"{path}_median_ratio": float(np.median(ratio)),
                f"{path}_share_above_1": float((ratio > 1).mean())}
        out[f"{path}_accumulated"] = out[f"{path}_median_ratio"] * math.sqrt(out["theta_steps"])
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _gap_text(result: dict[str, Any], name: str) -> str:
    se = result[f"gap_se_{name}"]
    noise = "" if se is None else f" ± {se:.2f} (s.e., {result[f'paired_seeds_{name}']} paired seeds)"
    verdict = "a win" if result[f"beats_{name}"] else "no win"
    return f"searched − {name}: {result[f'gap_{name}']:+.2f} AP{noise}: {verdict}"


def show(part: str, result: dict[str, Any]) -> None:
    if part == "targets":
        table = Table("target (x Lite0)", "target ms", "LUT ms", "measured ms", "architecture",
                      title=f"--target-ms sweep on {HOST} fp32 ({result['epochs']} epochs each)")
        for row in result["rows"]:
            table.add_row(f"{row['fraction']:.2f}", f"{row['target_ms']:.2f}", f"{row['predicted_ms']:.2f}",
                          f"{row['measured_ms']:.2f}", row["arch"])
    elif part == "devices":
        table = Table("comparison", "found for", "fp32 measured (LUT) ms", "int8 measured (LUT) ms", "architecture",
                      title=f"{HOST} fp32 vs int8 ({result['epochs']}-epoch searches, "
                            f"{result.get('rounds', 9)} timing rounds)")
        labelled = [("own search, no target", result["free"])]
        labelled += [(f"score of fp32 {row['fraction']:.2f}x Lite0", row) for row in result["matched"]]
        for label, row in labelled:
            for p in ("fp32", "int8") if row["differ"] else ("fp32",):
                table.add_row(label if p == "fp32" else "", p if row["differ"] else "both", *(
                    f"{_ms(row[f'{p}_arch_on_{q}_measured_ms'])} ({row[f'{p}_arch_on_{q}_predicted_ms']:.2f})"
                    for q in ("fp32", "int8")), row["archs"][p].split(":")[1])
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
    "cost": cost, "modes": modes, "targets": targets, "devices": devices, "signal": signal,
    "matched": matched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/coco-mini"))
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ", ".join(PARTS))
    parser.add_argument("--sweep-epochs", type=int, default=4, help="epochs of each targets/devices search")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.75, 0.85, 1.0],
                        help="targets as fractions of Lite0's latency on this machine")
    parser.add_argument("--matched-fractions", type=float, nargs="+",
                        default=[round(0.4 + 0.05 * step, 2) for step in range(11)],
                        help="devices part: score levels, those of the best fp32 architecture within these fractions "
                             "of Lite0's fp32 latency")
    parser.add_argument("--rounds", type=int, default=9,
                        help="targets/devices parts: interleaved timing rounds per measured backbone")
    parser.add_argument("--batch", type=int, default=8, help="batch of the modes part")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per mode")
    parser.add_argument("--signal-run", type=Path, default=Path("runs/search/bench-cost"),
                        help="finished search whose θ gradient the signal part measures")
    parser.add_argument("--matched-device", default="jetson", help="profile of the matched part")
    parser.add_argument("--matched-ms", type=float, default=None,
                        help="matched part's latency on that device (default: MobileNetV2-like's own); the "
                             "hand-designed backbones are scaled by input size to it (with --out for its own JSON)")
    parser.add_argument("--classes", default="person", help="classes of the matched part's search and trainings")
    parser.add_argument("--train-epochs", type=int, default=6,
                        help=f"epochs of every matched training (≤ {CPU_MIN_PER_MODEL} CPU-minutes each here)")
    parser.add_argument("--train-lr", type=float, default=MATCHED_LR,
                        help="peak learning rate of every matched training")
    parser.add_argument("--random", type=int, default=3, help="random architectures of the matched part")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="matched part: train every model with each seed; AP is their mean")
    parser.add_argument("--close-seeds", type=int, nargs="*", default=[],
                        help="matched part: more seeds for the searched backbone and Lite0 scaled only (the close "
                             "pair); a win over a hand-designed one must exceed two standard errors of the paired gap")
    parser.add_argument("--redo", action="store_true", help="run parts again even when their JSON exists")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/search"))
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

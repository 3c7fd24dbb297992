"""The search's evidence (issue 5), in one command:

    python benchmarks/search.py [--data ../shared/datasets/coco-mini] [--parts cost,modes,targets,devices]

- cost: the default search (``edgedet search --device jetson --data DATA``: lite0@320, its default epochs) in a
  child process: wall and CPU minutes, peak resident memory, every logged number finite; beside FBNet's 216
  GPU-hours on ImageNet.
- modes: seconds per training step and peak memory of the single-path supernet (the CPU default) and of the full
  mixture of all 9 candidates (the GPU default), same batch.
- targets: searches for this machine (profile ``xeon-2vcpu``, fp32) at three ``--target-ms`` (fractions of Lite0's
  latency); each result's LUT prediction and its latency measured here. A tighter target must give a faster backbone.
- devices: searches for this machine in fp32 and in int8, without targets (FBNet's setting: the latency loss alone
  trades speed on each device); both architectures measured in both precisions (FBNet's iPhone X vs Galaxy S8
  table): each should be faster on its own. (With a target each derivation fills its own budget, and a budget in
  INT8 buys a different amount of network than one in FP32, so that comparison would mix capacity with fit.)
- signal: how much θ's gradient says per batch at the end of a finished search (``--signal-run``): the detection
  loss's gradient on θ over every θ batch twice (two augmentations), on the single path and on the mixture; per θ
  entry |mean| / std over batches. θ moves by Adam steps of about its learning rate whatever the gradient's size, so
  with a ratio r per batch, n steps accumulate a signal-to-noise of about r·√n.

Each part writes ``runs/bench/search/<part>.json`` and is skipped when that file exists (``--redo`` runs it again);
its searches live in ``runs/search/bench-*/`` and resume when interrupted.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import resource
import subprocess
import sys
import time
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
from edgedet.search.loop import THETA_CHUNK, SearchConfig, Searcher, chunks, frozen, search
from edgedet.search.supernet import Supernet
from edgedet.space import ArchSpec, get_space
from edgedet.train.checkpoint import read_checkpoint
from train_throughput import random_batch  # benchmarks/ is the script's folder

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


def cost(args: argparse.Namespace) -> dict[str, Any]:
    run = Path("runs/search/bench-cost")
    command = [sys.executable, "-m", "edgedet", "search", "--device", "jetson", "--data", str(args.data),
               "--name", run.name, *(["--resume"] if (run / "last.pt").exists() else [])]
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


def _search(name: str, args: argparse.Namespace, precision: str, target_ms: float | None) -> ArchSpec:
    run = Path("runs/search") / name
    config = SearchConfig(devices=[HOST], precision=precision, target_ms=[] if target_ms is None else [target_ms],
                          data=str(args.data), imgsz=320, epochs=args.sweep_epochs, warmup_epochs=1)
    return search(config, run, resume=(run / "last.pt").exists()).arch


def _lite0_ms(precision: str) -> float:
    return predict_ms(get_profile(HOST).latency_model(precision), ArchSpec.default("lite0", 320))


def targets(args: argparse.Namespace) -> dict[str, Any]:
    lut, lite0 = get_profile(HOST).latency_model("fp32"), _lite0_ms("fp32")
    archs = {fraction: _search(f"bench-target-{fraction}", args, "fp32", fraction * lite0)
             for fraction in args.fractions}
    measured = measure_backbones({str(f): a for f, a in archs.items()}, "fp32", rounds=9)
    rows = [{"fraction": f, "target_ms": f * lite0, "predicted_ms": predict_ms(lut, a), "measured_ms": measured[str(f)],
             "arch": str(a)} for f, a in archs.items()]
    ordered = sorted(rows, key=lambda r: r["target_ms"])
    return {"lite0_ms": lite0, "rows": rows, "epochs": args.sweep_epochs,
            "monotonic_lut": all(a["predicted_ms"] <= b["predicted_ms"] for a, b in zip(ordered, ordered[1:])),
            "monotonic_measured": all(a["measured_ms"] <= b["measured_ms"] for a, b in zip(ordered, ordered[1:])),
            "within_target": all(r["predicted_ms"] <= r["target_ms"] for r in rows)}


def devices(args: argparse.Namespace) -> dict[str, Any]:
    archs = {p: _search(f"bench-free-{p}", args, p, None) for p in ("fp32", "int8")}
    out: dict[str, Any] = {"epochs": args.sweep_epochs,
                           "archs": {p: str(a) for p, a in archs.items()}, "differ": archs["fp32"].ops != archs["int8"].ops}
    for precision in ("fp32", "int8"):
        lut = get_profile(HOST).latency_model(precision)
        measured = measure_backbones({p: a for p, a in archs.items()}, precision, rounds=9)
        for searched_for, arch in archs.items():
            out[f"{searched_for}_arch_on_{precision}_measured_ms"] = measured[searched_for]
            out[f"{searched_for}_arch_on_{precision}_predicted_ms"] = predict_ms(lut, arch)
    out["each_faster_on_its_own"] = (out["fp32_arch_on_fp32_measured_ms"] < out["int8_arch_on_fp32_measured_ms"]
                                     and out["int8_arch_on_int8_measured_ms"] < out["fp32_arch_on_int8_measured_ms"])
    return out


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


def show(part: str, result: dict[str, Any]) -> None:
    if part == "targets":
        table = Table("target (x Lite0)", "target ms", "LUT ms", "measured ms", "architecture",
                      title=f"--target-ms sweep on {HOST} fp32 ({result['epochs']} epochs each)")
        for row in result["rows"]:
            table.add_row(f"{row['fraction']:.2f}", f"{row['target_ms']:.2f}", f"{row['predicted_ms']:.2f}",
                          f"{row['measured_ms']:.2f}", row["arch"])
    elif part == "devices":
        table = Table("searched for", "fp32 measured (LUT) ms", "int8 measured (LUT) ms",
                      title=f"{HOST} fp32 vs int8 searches without targets ({result['epochs']} epochs each)")
        for p in ("fp32", "int8"):
            table.add_row(p, *(f"{result[f'{p}_arch_on_{q}_measured_ms']:.2f} "
                               f"({result[f'{p}_arch_on_{q}_predicted_ms']:.2f})" for q in ("fp32", "int8")))
    else:
        table = Table("key", "value", title=part)
        for key, value in result.items():
            table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)


PARTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "cost": cost, "modes": modes, "targets": targets, "devices": devices, "signal": signal}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/coco-mini"))
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ", ".join(PARTS))
    parser.add_argument("--sweep-epochs", type=int, default=4, help="epochs of each targets/devices search")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.75, 0.85, 1.0],
                        help="targets as fractions of Lite0's latency on this machine")
    parser.add_argument("--batch", type=int, default=8, help="batch of the modes part")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per mode")
    parser.add_argument("--signal-run", type=Path, default=Path("runs/search/bench-cost"),
                        help="finished search whose θ gradient the signal part measures")
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
        show(part, result)


if __name__ == "__main__":
    main()

"""The searched backbone against hand-designed and random ones at one latency (issue 5), in one command;
benchmarks/README.md has the results and what they mean:

    python benchmarks/search_matched.py [--data ../shared/datasets/coco-mini] [--seeds 0 1] [--close-seeds ...]

A ``--target-ms`` search at MobileNetV2-like's latency on ``--matched-device`` (or at ``--matched-ms``); it,
MobileNetV2-like and Lite0 scaled by input size to that latency, the prior-only derivation (the same search with θ
ignored: what θ added) and ``--random`` random ones (the pipeline's, within 5% of the searched one's latency) are
each trained (``edgedet train`` in a child, every ``--seeds``, the searched one
and scaled Lite0 also every ``--close-seeds``) with one short recipe: AP / AP50 on coco-mini val, CPU and wall minutes
of each training, and the searched one's paired AP gap to each hand-designed one (a win must exceed two standard
errors). The models' latencies must be within 5% of the target and every training within the issue's 15 CPU-minutes.

Prints the table and writes ``<--out>/matched.json`` (skipped when it exists: ``--redo``). The search
(``runs/search/bench-matched*/``) and the trainings (``runs/train/bench-matched-*/``) resume when interrupted and are
reused only while their settings are the same.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from _common import console, parser_with_common, redo_unless_same, run_child, run_part  # benchmarks/ is our folder
from rich.table import Table

from edgedet.devices.builder import get_or_build_profile
from edgedet.devices.latency import predict_ms
from edgedet.io import atomic_write_json
from edgedet.pipeline.run import BASELINES
from edgedet.pipeline.stages import matched_random_archs
from edgedet.search.derive import prior_only_arch, resolution_scaled
from edgedet.space import ArchSpec
from edgedet.stats import over_seeds, paired_gap

CPU_MIN_PER_MODEL = 15  # the training budget per model on this machine
MATCHED_LR = 1e-3  # the trainings' AdamW peak learning rate (runs at another --train-lr keep their own folders)
COMPARED = ("mbv2", "lite0_scaled", "prior_only")  # the searched one's paired gap is taken to each


def _train_child(name: str, arch: ArchSpec, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """``edgedet train`` in a child process (its CPU time counted: all of it unless it resumed); the result is kept
    in the run folder."""
    lr_tag = "" if args.train_lr == MATCHED_LR else f"-lr{args.train_lr:g}"
    run = Path("runs/train") / f"bench-matched-{name}{lr_tag}{f'-seed{seed}' if seed else ''}"
    redo_unless_same(run, {"arch": str(arch), "imgsz": arch.imgsz, "data": str(args.data),
                           "classes": args.classes.split(","), "epochs": args.train_epochs, "lr": args.train_lr,
                           "seed": seed})
    done = run / "bench.json"
    if done.exists():
        return json.loads(done.read_text())
    usage = run_child(["train", "--arch", str(arch), "--imgsz", str(arch.imgsz), "--data", str(args.data),
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
        run_child(["search", "--device", args.matched_device, "--target-ms", str(target), "--data", str(args.data),
                   "--classes", args.classes], run)
    searched = json.loads((run / "arch.json").read_text())
    search_out = {"arch": searched["arch"], "devices": searched["provenance"]["devices"]}
    archs = {"searched": ArchSpec.parse(searched["arch"]), "mbv2": resolution_scaled(mbv2, lut, target),
             "lite0_scaled": resolution_scaled(ArchSpec.default("lite0"), lut, target),
             "prior_only": prior_only_arch(run / "arch.json"),  # θ ignored: what θ added
             **{name: ArchSpec.parse(a) for name, a in matched_random_archs(search_out, args.random, 5.0).items()}}
    close = ("searched", "lite0_scaled")  # the pair whose gap needs the most seeds: --close-seeds trains them more
    rows = [{"model": name, "arch": str(arch), "predicted_ms": predict_ms(lut, arch),
             **over_seeds({seed: _train_child(name + tag, arch, args, seed)
                           for seed in args.seeds + (args.close_seeds if name in close else [])})}
            for name, arch in archs.items()]
    by_name = {row["model"]: row for row in rows}
    randoms = [row["AP"] for row in rows if row["model"].startswith("random")]
    ap, random_median = by_name["searched"]["AP"], float(np.median(randoms))
    gaps = {f"{key}_{name}": value for name in COMPARED
            for key, value in paired_gap(by_name["searched"], by_name[name]).items()}
    return {"device": args.matched_device, "target_ms": target, "classes": args.classes,
            "train_epochs": args.train_epochs, "train_lr": args.train_lr, "seeds": args.seeds,
            "close_seeds": args.close_seeds, "rows": rows,
            "AP": ap, "AP50": by_name["searched"]["AP50"], **gaps,
            "random_median_AP": random_median, "beats_random_median": ap > random_median,
            "within_5pct": all(abs(row["predicted_ms"] / target - 1) <= 0.05 for row in rows),
            "max_cpu_min": max(row["cpu_min"] for row in rows),
            "within_cpu_budget": all(row["cpu_min"] <= CPU_MIN_PER_MODEL for row in rows)}


def _gap_text(result: dict[str, Any], name: str) -> str:
    se = result[f"gap_se_{name}"]
    noise = "" if se is None else f" ± {se:.2f} (s.e., {result[f'paired_seeds_{name}']} paired seeds)"
    return f"searched − {name}: {result[f'gap_{name}']:+.2f} AP{noise}: {'a' if result[f'beats_{name}'] else 'no'} win"


def show(part: str, result: dict[str, Any]) -> None:
    table = Table("model", f"{result['device']} ms", "AP (per seed)", "AP50", "CPU min", "wall min", "architecture",
                  title=f"At {result['target_ms']:.2f} ms on {result['device']}: coco-mini {result['classes']}, "
                        f"{result['train_epochs']} epochs, mean of seeds {result['seeds']}")
    for row in result["rows"]:
        per_seed = ", ".join(f"{ap:.1f}" for ap in row["AP_per_seed"])
        table.add_row(row["model"], f"{row['predicted_ms']:.2f}", f"{row['AP']:.1f} ({per_seed})",
                      f"{row['AP50']:.1f}", f"{row['cpu_min']:.1f}", f"{row['wall_min']:.1f}", row["arch"])
    table.caption = "; ".join(_gap_text(result, name) for name in COMPARED)
    console.print(table)


def main() -> None:
    parser = parser_with_common(__doc__)
    add = parser.add_argument
    add("--matched-device", default="jetson", help="the device profile whose latency the models are matched at")
    add("--matched-ms", type=float, default=None, help="latency on that device (default: MobileNetV2-like's own); "
        "the hand-designed backbones are scaled by input size to it (with --out for its JSON)")
    add("--classes", default="person", help="classes of the search and the trainings")
    add("--train-epochs", type=int, default=6,
        help=f"epochs of every training (≤ {CPU_MIN_PER_MODEL} CPU-minutes each here)")
    add("--train-lr", type=float, default=MATCHED_LR, help="peak learning rate of every training")
    add("--random", type=int, default=3, help="random architectures at the searched one's latency")
    add("--seeds", type=int, nargs="+", default=[0, 1], help="every model trained with each; AP is the mean")
    add("--close-seeds", type=int, nargs="*", default=[], help="more seeds for the searched backbone and Lite0 scaled "
        "only (the close pair); a win must exceed two standard errors of the paired gap")
    run_part("matched", parser.parse_args(), matched, show)


if __name__ == "__main__":
    main()

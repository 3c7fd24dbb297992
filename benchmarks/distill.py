"""Online dense distillation against the same recipe without a teacher (issue 23), in one command;
benchmarks/README.md has the results:

    python benchmarks/distill.py [--data ../shared/datasets/coco-mini] [--teacher ../shared/peers/yolox-nano/yolox_nano.onnx]
        [--time 85m] [--seeds 0] [--train-set warmup_epochs=5] [--parallel 2]

For each seed, ``edgedet train`` on ``--data`` (every class it annotates) twice under one time budget, side by side,
each pinned to its own core: the labels alone, and the labels with ``--distill TEACHER``. The teacher's time comes out
of the student's budget, so the comparison is per CPU-minute. Reported: AP / AP50 on ``--data``'s val (for coco-mini,
val2017: the teacher trained on train2017, the student never sees val), the training and evaluation seconds and the
images seen of each run, and the paired AP gap over the seeds. Prints the table and writes ``<--out>/distill.json``;
the trainings (``runs/train/coco80-{alone,distill}-TIME[-seedN]``) resume when interrupted and are reused only while
their settings are the same.
"""

from __future__ import annotations

import argparse
import csv
import json
from functools import partial
from pathlib import Path
from typing import Any

from _common import console, parser_with_common, redo_unless_same, run_child, run_part, side_by_side  # benchmarks/
from rich.table import Table

from edgedet.io import atomic_write_json
from edgedet.settings import parse_set_items
from edgedet.stats import over_seeds, paired_gap

ARMS = ("alone", "distill")


def _log_totals(run: Path) -> dict[str, float]:
    """The run's seconds of training and evaluation and the images it saw, from its log (resumes included)."""
    with open(run / "log.csv", newline="") as log:
        rows = list(csv.DictReader(log))
    seconds = sum(float(row["epoch_s"]) + float(row["eval_s"] or 0) for row in rows)
    seen = sum(float(row["images_per_s"]) * float(row["epoch_s"]) for row in rows)
    return {"train_eval_min": seconds / 60, "images_seen": seen, "epochs": len(rows)}


def _train(arm: str, seed: int, args: argparse.Namespace, cores: set[int] | None) -> dict[str, Any]:
    """One arm's training in a child (see ``run_child``); its result kept in the run folder."""
    run = Path("runs/train") / f"coco80-{arm}-{args.time}{f'-seed{seed}' if seed else ''}"
    teacher = [str(args.teacher)] if arm == "distill" else []
    settings = {"data": [str(args.data)], "time": args.time, "seed": seed, "workers": args.workers,
                "distill": teacher[0] if teacher else None, **parse_set_items(args.train_set)}
    redo_unless_same(run, settings)
    done = run / "bench.json"
    if not done.exists():
        usage = run_child(["train", "--data", str(args.data), "--time", args.time, "--seed", str(seed),
                           "--workers", str(args.workers), "--eval-images", str(args.eval_images),
                           *[arg for setting in args.train_set for arg in ("--set", setting)],
                           *[arg for path in teacher for arg in ("--distill", path)],
                           "--json-out", str(run / "final.json")], run, cores)
        final = json.loads((run / "final.json").read_text())
        atomic_write_json(done, {"AP": final["AP"], "AP50": final["AP50"], **usage})
    return json.loads(done.read_text()) | _log_totals(run)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    jobs = {(arm, seed): partial(_train, arm, seed, args) for seed in args.seeds for arm in ARMS}
    trained = side_by_side(jobs, args.parallel)
    rows = {}
    for arm in ARMS:  # minutes from the logs: a child's own CPU time counts only its resume when it resumed
        runs = {seed: trained[arm, seed] for seed in args.seeds}
        rows[arm] = {k: v for k, v in over_seeds(runs).items() if k not in ("cpu_min", "wall_min")} | {
            key: [run[key] for run in runs.values()] for key in ("train_eval_min", "images_seen", "epochs")}
    gap = paired_gap(rows["distill"], rows["alone"])
    return {"data": args.data.name, "teacher": args.teacher.name, "time": args.time, "seeds": args.seeds,
            "rows": rows, "AP": rows["distill"]["AP"], "AP50": rows["distill"]["AP50"],
            "AP_alone": rows["alone"]["AP"], "AP50_alone": rows["alone"]["AP50"], **gap}


def show(part: str, result: dict[str, Any]) -> None:
    table = Table("arm", "AP (per seed)", "AP50", "train + eval min", "images seen", "epochs",
                  title=f"{result['data']} val, every class: {result['time']} each, seeds {result['seeds']}, "
                        f"teacher {result['teacher']}")
    for arm, row in result["rows"].items():
        table.add_row(arm, f"{row['AP']:.2f} ({', '.join(f'{ap:.2f}' for ap in row['AP_per_seed'])})",
                      f"{row['AP50']:.2f}", ", ".join(f"{m:.1f}" for m in row["train_eval_min"]),
                      ", ".join(f"{n:.0f}" for n in row["images_seen"]), ", ".join(map(str, row["epochs"])))
    noise = "" if result["gap_se"] is None else f" ± {result['gap_se']:.2f} (s.e.)"
    table.caption = f"distill − alone: {result['gap']:+.2f} AP{noise} over {result['paired_seeds']} paired seeds"
    console.print(table)


def main() -> None:
    parser = parser_with_common(__doc__)
    parser.set_defaults(out=Path("runs/bench/distill"))
    add = parser.add_argument
    add("--teacher", type=Path, default=Path("../shared/peers/yolox-nano/yolox_nano.onnx"),
        help="the dense teacher (edgedet train --distill): on the student's grid")
    add("--time", default="85m", help="each training's time budget, the teacher's time included")
    add("--seeds", type=int, nargs="+", default=[0], help="each seed trains both arms; the gap is paired by seed")
    add("--train-set", nargs="*", default=["warmup_epochs=5"], metavar="KEY=VALUE",
        help="both trainings' other settings (edgedet train --set)")
    add("--workers", type=int, default=1, help="data-loading workers of each training")
    add("--eval-images", type=int, default=190, help="val images evaluated during training (the whole val at the end)")
    add("--parallel", type=int, default=2, help="trainings side by side, each pinned to its own share of the cores")
    run_part("distill", parser.parse_args(), measure, show)


if __name__ == "__main__":
    main()

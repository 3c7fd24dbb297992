"""Online dense distillation against the same recipe without a teacher (issue 23), in one command;
benchmarks/README.md has the results:

    python benchmarks/distill.py [--data ../shared/datasets/coco-mini] [--classes person] [--time 85m] [--seeds 0]
        [--teacher ../shared/peers/yolox-nano/yolox_nano.onnx] [--train-set warmup_epochs=5] [--also-eval DIR]
        [--more-data ../shared/datasets/people] [--arms alone distill]

For each seed, ``edgedet train`` on ``--data`` (every class it annotates, or ``--classes``) twice under one time
budget, side by side, each pinned to its own core: the labels alone, and the labels with ``--distill TEACHER``. The
teacher's time comes out of the student's budget, so the comparison is per CPU-minute. ``--more-data`` trains on more
folders beside ``--data`` (``--train-set data_repeats=[...]`` weighs them): the classes they do not annotate are
learned from the teacher alone, and the val stays ``--data``'s. ``--arms distill`` trains one arm only (the paired
gap then is not reported). Reported: AP / AP50 on ``--data``'s val (for coco-mini, val2017: the teacher trained on
train2017, the student never sees val) and on ``--also-eval``'s, the training and evaluation minutes, the images seen
and the evaluations along the way of each run, and the paired AP gap over the seeds, beside the teacher's own AP on
the val images shrunk to the student's input size, run at that size times ``--train-set distill_scale=N`` (what it
can teach). Prints the table and writes ``<--out>/distill-<data>-<classes>-<time>[-<settings>].json``; the trainings
(``runs/train/distill-<data>-<classes>-{alone,distill}-<time>[-<settings>][-seedN]``, the settings being those of
``--train-set`` other than its default) resume when interrupted and are reused only while their settings are the same.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import Any

from _common import (console, eval_child, log_totals, parser_with_common, redo_unless_same,  # this folder's
                     on_shrunk_images, run_child, run_part, settings_tag, side_by_side)
from rich.table import Table

from edgedet.data.annotations import find_split
from edgedet.evaluate.images import evaluate_predictor
from edgedet.io import atomic_write_json
from edgedet.runtime.peers import load_teacher
from edgedet.settings import parse_set_items
from edgedet.stats import over_seeds, paired_gap
from edgedet.train.config import TrainConfig

ARMS = ("alone", "distill")
DEFAULT_TRAIN_SET = ["warmup_epochs=5"]  # --train-set's default: the only settings a run folder's name leaves out


def _classes(args: argparse.Namespace) -> list[str] | None:
    return args.classes.split(",") if args.classes else None


def _data(args: argparse.Namespace) -> list[Path]:
    return [args.data, *args.more_data]


def _tag(args: argparse.Namespace) -> str:
    return f"{'+'.join(path.name for path in _data(args))}-{'+'.join(_classes(args) or ['all'])}"


def _settings(args: argparse.Namespace) -> str:
    """The --train-set settings besides the default, for folder and file names (other settings, other runs)."""
    return settings_tag([pair for pair in args.train_set if pair not in DEFAULT_TRAIN_SET])


def _train(arm: str, seed: int, args: argparse.Namespace, cores: set[int] | None) -> dict[str, Any]:
    """One arm's training in a child (see ``run_child``), then its AP on ``--also-eval``; kept in the run folder."""
    seed_tag = f"-seed{seed}" if seed else ""
    run = Path("runs/train") / f"distill-{_tag(args)}-{arm}-{args.time}{_settings(args)}{seed_tag}"
    teacher = [str(args.teacher)] if arm == "distill" else []
    settings = {"data": list(map(str, _data(args))), "classes": _classes(args), "time": args.time, "seed": seed,
                "workers": args.workers, "max_eval_images": args.eval_images,
                "distill": teacher[0] if teacher else None, **parse_set_items(args.train_set)}
    redo_unless_same(run, settings)
    done = run / "bench.json"
    if not done.exists():
        usage = run_child(["train", *[arg for path in _data(args) for arg in ("--data", str(path))],
                           "--time", args.time, "--seed", str(seed), "--workers", str(args.workers),
                           "--eval-images", str(args.eval_images),
                           *(["--classes", args.classes] if args.classes else []),
                           *[arg for setting in args.train_set for arg in ("--set", setting)],
                           *[arg for path in teacher for arg in ("--distill", path)],
                           "--json-out", str(run / "final.json")], run, cores)
        final = json.loads((run / "final.json").read_text())
        atomic_write_json(done, {"AP": final["AP"], "AP50": final["AP50"], **usage})
    result = json.loads(done.read_text()) | log_totals(run)
    return result | ({"also": eval_child(run, args.also_eval, cores)} if args.also_eval else {})


def _over_seeds(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """``over_seeds`` without its CPU and wall minutes: a child resumed counts only its resume (the logs' minutes
    are given instead)."""
    return {k: v for k, v in over_seeds(runs).items() if k not in ("cpu_min", "wall_min")}


def _teacher_eval(args: argparse.Namespace) -> dict[str, Any]:
    """The teacher's AP / AP50 on ``--data``'s val as distillation runs it: on the image shrunk to the student's
    input size, at that size times ``distill_scale`` (what it can teach)."""
    config = TrainConfig(data=[str(args.data)], **parse_set_items(args.train_set))
    imgsz = config.trained_arch().imgsz
    teacher = load_teacher(args.teacher, class_names=_classes(args), size=imgsz * config.distill_scale, conf=0.025)
    report, _ = evaluate_predictor(on_shrunk_images(teacher, imgsz), *find_split(args.data, "val"),
                                   list(teacher.class_names))
    return {"imgsz": imgsz, "teacher_imgsz": teacher.input_size, "AP": report.metrics["AP"],
            "AP50": report.metrics["AP50"]}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    jobs = {(arm, seed): partial(_train, arm, seed, args) for seed in args.seeds for arm in args.arms}
    trained = side_by_side(jobs, args.parallel)
    rows = {}
    for arm in args.arms:
        runs = {seed: trained[arm, seed] for seed in args.seeds}
        rows[arm] = _over_seeds(runs) | {key: [run[key] for run in runs.values()]
                                         for key in ("train_eval_min", "images_seen", "epochs", "evals")}
        if args.also_eval:
            rows[arm]["also"] = _over_seeds({seed: run | run["also"] for seed, run in runs.items()})
    both = set(args.arms) == set(ARMS)
    gap = paired_gap(rows["distill"], rows["alone"]) if both else {}
    also = ({f"also_{k}": v for k, v in paired_gap(rows["distill"]["also"], rows["alone"]["also"]).items()}
            if args.also_eval and both else {})
    flat = {(key if arm == "distill" else f"{key}_alone"): rows[arm][key] for arm in rows for key in ("AP", "AP50")}
    return {"data": args.data.name, "more_data": [path.name for path in args.more_data],
            "classes": args.classes or "all", "also_eval": args.also_eval and args.also_eval.name,
            "teacher": args.teacher.name, "time": args.time, "seeds": args.seeds, "rows": rows,
            "teacher_eval": _teacher_eval(args), **flat, **gap, **also}


def show(part: str, result: dict[str, Any]) -> None:
    also = result["also_eval"]
    more = f" (trained also on {', '.join(result['more_data'])})" if result.get("more_data") else ""
    table = Table("arm", "AP (per seed)", "AP50", *([f"{also} AP / AP50"] if also else []), "train + eval min",
                  "images seen", "epochs", title=f"{result['data']} val{more}, classes {result['classes']}: "
                  f"{result['time']} each, seeds {result['seeds']}, teacher {result['teacher']}")
    for arm, row in result["rows"].items():
        table.add_row(arm, f"{row['AP']:.2f} ({', '.join(f'{ap:.2f}' for ap in row['AP_per_seed'])})",
                      f"{row['AP50']:.2f}",
                      *([f"{row['also']['AP']:.2f} / {row['also']['AP50']:.2f}"] if also else []),
                      ", ".join(f"{m:.1f}" for m in row["train_eval_min"]),
                      ", ".join(f"{n:.0f}" for n in row["images_seen"]), ", ".join(map(str, row["epochs"])))
    teacher = result["teacher_eval"]
    gap = ""
    if "gap" in result:
        noise = "" if result["gap_se"] is None else f" ± {result['gap_se']:.2f} (s.e.)"
        gap = (f"distill − alone: {result['gap']:+.2f} AP{noise} over {result['paired_seeds']} paired seeds"
               + (f"; on {also}: {result['also_gap']:+.2f}" if also else "") + "; ")
    size = teacher.get("teacher_imgsz", teacher["imgsz"])  # older results ran it at the student's size
    table.caption = gap + (f"the teacher at {size} px on the student's {teacher['imgsz']} px view: "
                           f"{teacher['AP']:.1f} / {teacher['AP50']:.1f}")
    console.print(table)


def main() -> None:
    parser = parser_with_common(__doc__)
    parser.set_defaults(out=Path("runs/bench/distill"))
    add = parser.add_argument
    add("--classes", default=None, help="comma-separated classes to train (default: every class of --data)")
    add("--teacher", type=Path, default=Path("../shared/peers/yolox-nano/yolox_nano.onnx"),
        help="the dense teacher (edgedet train --distill): on the student's grid")
    add("--time", default="85m", help="each training's time budget, the teacher's time included")
    add("--seeds", type=int, nargs="+", default=[0], help="each seed trains both arms; the gap is paired by seed")
    add("--arms", nargs="+", choices=ARMS, default=list(ARMS), help="the arms to train (both for the gap)")
    add("--more-data", type=Path, nargs="*", default=[], help="more training folders beside --data, e.g. "
        "../shared/datasets/people (their unannotated classes are taught by the teacher alone; val stays --data's)")
    add("--train-set", nargs="*", default=DEFAULT_TRAIN_SET, metavar="KEY=VALUE",
        help="both trainings' other settings (edgedet train --set)")
    add("--workers", type=int, default=1, help="data-loading workers of each training")
    add("--eval-images", type=int, default=190, help="val images evaluated during training (the whole val at the end)")
    add("--parallel", type=int, default=2, help="trainings side by side, each pinned to its own share of the cores")
    add("--also-eval", type=Path, default=None, help="another dataset whose val scores both trained models too "
        "(e.g. ../shared/datasets/coco-mini beside --data ../shared/datasets/people --classes person)")
    args = parser.parse_args()
    run_part(f"distill-{_tag(args)}-{args.time}{_settings(args)}", args, measure, show)


if __name__ == "__main__":
    main()

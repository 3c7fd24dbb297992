"""What the search benchmarks (``search.py``, ``search_matched.py``) share, none of it library logic: ``edgedet``
commands in child processes with their CPU time counted, the settings check of a reused run folder or part (the
library's one reuse rule, ``edgedet.reuse``), the options every part takes, and each part's JSON written once and
shown."""

from __future__ import annotations

import argparse
import csv
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Hashable, TypeVar

from rich.console import Console

from edgedet.io import atomic_write_json
from edgedet.reuse import changed_settings

console = Console()
Key, Result = TypeVar("Key", bound=Hashable), TypeVar("Result")


def run_child(command: list[str], run: Path, cores: set[int] | None = None) -> dict[str, float]:
    """``edgedet COMMAND`` into the run folder ``run`` (resumed when it holds a last.pt) in a child process, pinned to
    ``cores`` when given (one thread per core): its wall and CPU minutes and peak memory, its own and its
    data-loading workers' (``wait4``: children running side by side are counted apart)."""
    command = [*command, "--name", run.name, *(["--resume"] if (run / "last.pt").exists() else [])]
    console.print("running: edgedet " + " ".join(command) + (f" (cores {sorted(cores)})" if cores else ""))
    env = os.environ | ({"OMP_NUM_THREADS": str(len(cores))} if cores else {})
    start = time.perf_counter()
    pinned = ["taskset", "--cpu-list", ",".join(map(str, sorted(cores)))] if cores else []  # execs: same pid
    child = subprocess.Popen([*pinned, sys.executable, "-m", "edgedet", *command], env=env)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, child.args)
    return {"wall_min": (time.perf_counter() - start) / 60, "cpu_min": (usage.ru_utime + usage.ru_stime) / 60,
            "peak_rss_gb": usage.ru_maxrss / 1024**2}


def log_totals(run: Path) -> dict[str, Any]:
    """A training run's minutes of training and evaluation, the images it saw (each epoch's images/s x seconds:
    under one time budget a model that trains faster sees more), its epochs and its evaluations along the way
    (``[epoch, AP]``), from its log.csv (resumes included)."""
    with open(run / "log.csv", newline="") as log:
        rows = list(csv.DictReader(log))
    seconds = sum(float(row["epoch_s"]) + float(row["eval_s"] or 0) for row in rows)
    seen = sum(float(row["images_per_s"]) * float(row["epoch_s"]) for row in rows)
    evals = [[int(row["epoch"]), float(row["AP"])] for row in rows if row["AP"]]
    return {"train_eval_min": seconds / 60, "images_seen": seen, "epochs": len(rows), "evals": evals}


def eval_child(train_run: Path, data: Path, cores: set[int] | None = None) -> dict[str, Any]:
    """A trained run's AP on another dataset's val (``edgedet eval`` of its best.pt in a child), kept beside it."""
    done = train_run / f"also-{data.name}.json"
    if not done.exists():
        checkpoint = train_run / ("best.pt" if (train_run / "best.pt").exists() else "last.pt")
        run_child(["eval", str(checkpoint), "--data", str(data), "--json-out", str(done)],
                  Path("runs/eval") / f"{train_run.name}-{data.name}", cores)
    return json.loads(done.read_text())


def side_by_side(jobs: dict[Key, Callable[[set[int] | None], Result]], parallel: int) -> dict[Key, Result]:
    """Every job run, ``parallel`` at a time, each given its own share of this process's cores to pin its child to
    (side by side on a shared machine: each job's CPU is its own, not its neighbour's); one at a time: None, every
    core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < parallel:
        raise SystemExit(f"--parallel {parallel}: this process may use only {len(cores)} cores")
    free: queue.Queue[set[int] | None] = queue.Queue()
    shares = [set(cores[len(cores) * i // parallel:len(cores) * (i + 1) // parallel]) for i in range(parallel)]
    for share in ([None] if parallel == 1 else shares):
        free.put(share)

    def pinned(key: Key) -> Result:
        share = free.get()
        try:
            return jobs[key](share)
        finally:
            free.put(share)

    with ThreadPoolExecutor(parallel) as pool:
        return dict(zip(jobs, pool.map(pinned, jobs)))


def redo_unless_same(run: Path, wanted: dict[str, Any]) -> None:
    """A run folder is reused (finished, or resumed) only when its config.json has these settings; one made with
    others is deleted so that it is redone, not passed off under the new ones."""
    if not (run / "config.json").exists():
        return
    changed = changed_settings(json.loads((run / "config.json").read_text()), wanted)
    if changed:
        console.print(f"{run}: made with another {', '.join(changed)}; doing it afresh")
        shutil.rmtree(run)


def settings_tag(pairs: list[str]) -> str:
    """KEY=VALUE settings in a run folder's name (``-epochs3``, ``-input_sizes-256-288`` for a list): runs made with
    other ones keep their own folders."""
    return "".join("-" + re.sub(r"[^\w.]+", "-", pair.replace("=", "")).strip("-") for pair in pairs)


def on_shrunk_images(predict: Callable[[Any], Any], size: int) -> Callable[[Any], Any]:
    """``predict`` (BGR image -> ``Detections``) run on each image shrunk to ``size`` px on its longer side, boxes
    back in the original's pixels: a teacher as dense distillation shows it a student's training view."""
    import cv2

    from edgedet.runtime.detections import Detections

    def shrunk(image: Any) -> Detections:
        factor = min(1.0, size / max(image.shape[:2]))
        found = predict(cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA))
        return Detections(found.boxes_xyxy / factor, found.scores, found.labels)

    return shrunk


def parser_with_common(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the options every part takes: its data, where its JSON goes, and --redo."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/coco-mini"))
    parser.add_argument("--redo", action="store_true", help="run parts again even when their JSON exists")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/search"), help="folder of <part>.json")
    return parser


def run_part(part: str, args: argparse.Namespace, measure: Callable[[argparse.Namespace], dict[str, Any]],
             show: Callable[[str, dict[str, Any]], None]) -> None:
    """``<--out>/<part>.json``: measured and written, or read when it was measured with these options (unless
    --redo); then shown."""
    path = args.out / f"{part}.json"
    options = json.loads(json.dumps({k: v for k, v in vars(args).items() if k not in ("redo", "out")}, default=str))
    saved = json.loads(path.read_text()) if path.exists() and not args.redo else None
    changed = changed_settings(saved.get("options", {}), options) if saved is not None else []
    if saved is not None and not changed:
        result = saved
        console.print(f"{part}: done before ({path}); --redo to measure again")
    else:
        if changed:
            console.print(f"{path}: measured with another {', '.join(changed)}; measuring again")
        result = measure(args) | {"options": options}
        atomic_write_json(path, result)
    try:
        show(part, result)
    except KeyError as missing:
        raise SystemExit(f"{path} has no {missing}: it is from an older benchmark; run this part with --redo")

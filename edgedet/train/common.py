"""What the trainer and the search loop share: the device, seeds and the exact RNG state a resume needs, the
warm-up + cosine schedule, EMA, loaders, progress and the CSV log."""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import TextColumn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from edgedet.data.coco import collate
from edgedet.errors import UsageError
from edgedet.io import atomic_write_text
from edgedet.progress import LoggedProgress, bar_columns


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device-type cuda: no CUDA device here; use auto or cpu")
    return torch.device(name)


def ema_avg_fn(decay: float):
    """EMA whose decay ramps up over the first updates, so early evaluations are not stuck near the init."""

    def average(averaged: torch.Tensor, current: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        d = decay * (1 - math.exp(-float(updates) / 200.0))
        return d * averaged + (1 - d) * current

    return average


class WarmupCosine:
    """``LambdaLR`` factor: linear warm-up from 1% then cosine down to ``min_ratio`` at ``total_steps``.

    An object, not a closure, so ``LambdaLR.state_dict`` saves ``total_steps`` with the run: a time budget moves it.
    """

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float) -> None:
        self.warmup, self.min_ratio = max(1, warmup_steps), min_ratio
        self.total_steps = total_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return 0.01 + 0.99 * step / self.warmup
        progress = (step - self.warmup) / (max(self.warmup + 1, self.total_steps) - self.warmup)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))



def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def rng_state() -> dict[str, Any]:
    """Every random generator a run draws from (CUDA's too: the search's Gumbel noise is drawn on the GPU), for a
    checkpoint that resumes exactly."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda, "numpy": np.random.get_state(), "python": random.getstate()}


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def interrupted_message(last: Path, epoch: int) -> str:
    """What Ctrl-C in ``epoch`` (0-based) leaves: the checkpoint of the last finished epoch, untouched, so that
    ``--resume`` redoes the unfinished one from the same state, order and random draws (exact)."""
    if not last.exists():
        return "interrupted in epoch 1: no epoch finished, nothing to resume (run it again)"
    return f"interrupted in epoch {epoch + 1}: {last} holds epoch {epoch}; --resume redoes epoch {epoch + 1} exactly"


def make_loader(dataset: Dataset, *, batch: int, workers: int, sampler: DistributedSampler | None = None
                ) -> DataLoader:
    """Shuffled batches with their own generator (seed it per epoch for the same order on resume); the last short
    batch is dropped unless it is the only one."""
    return DataLoader(dataset, batch_size=batch, shuffle=sampler is None, sampler=sampler, num_workers=workers,
                      collate_fn=collate, drop_last=len(dataset) > batch, generator=torch.Generator(),
                      persistent_workers=False)


def to_device(images: torch.Tensor, targets: list[dict[str, Any]], device: torch.device
              ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """A collated batch on ``device``: float images in channels-last, target tensors alongside."""
    images = images.to(device, non_blocking=True, memory_format=torch.channels_last).float()
    return images, [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]


def step_progress(*, disable: bool) -> LoggedProgress:
    """A transient stderr bar (a line a minute away from a terminal) with a free-form ``status`` field (losses,
    speed) and the time remaining."""
    return LoggedProgress(*bar_columns(), TextColumn("{task.fields[status]}"), disable=disable)


def write_log_csv(path: Path, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """The whole per-epoch history as CSV (columns ``keys``; other entries ignored), rewritten atomically each
    epoch so that the log always agrees with the checkpoint it sits beside, across Ctrl-C and --resume."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


def param_groups(params: Iterable[torch.nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on BN parameters, biases and scales: decaying them only hurts."""
    decay, no_decay = [], []
    for param in params:
        (decay if param.ndim > 1 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def resume_path(run_dir: Path) -> Path:
    """The checkpoint ``--resume`` continues from; its absence is a usage error, not a fresh start."""
    last = run_dir / "last.pt"
    if not last.exists():
        raise UsageError(f"--resume: no {last} to resume from; drop --resume to start fresh")
    return last

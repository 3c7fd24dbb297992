"""Does data loading keep the model busy? Training img/s with the real loader against the same steps on one batch
already in memory, and what the loader alone delivers.

    python benchmarks/data_loading.py [--data ../shared/datasets/people] [--arch lite0@320] [--workers 2]

Rounds alternate the two ways (A/B interleaved, medians), so machine drift hits both alike: a few training steps fed
by ``make_loader`` (decode + ``train_transforms`` in ``--workers`` processes, as ``edgedet train`` does), then as
many on a batch held in memory. The loader alone is timed apart, at 0 and at ``--workers`` workers, with no model
running: how many images per second it could feed. Prints a table and writes ``--json-out``.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from edgedet.data.transforms import train_transforms
from edgedet.detect.model import build_detector
from edgedet.io import atomic_write_json
from edgedet.space import ArchSpec
from edgedet.train.common import make_loader, param_groups, to_device
from edgedet.data.coco import training_set

DEVICE = torch.device("cpu")


def _train_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches, steps: int) -> float:
    """Images per second over ``steps`` training steps on the batches the iterator gives (their loading included)."""
    start, seen = time.perf_counter(), 0
    for images, targets in itertools.islice(batches, steps):
        images, targets = to_device(images, targets, DEVICE)
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(images)
    return seen / (time.perf_counter() - start)


def _loader_alone(dataset, batch: int, workers: int, batches: int) -> float:
    loader = iter(make_loader(dataset, batch=batch, workers=workers))
    next(loader)  # worker start-up is not throughput
    start = time.perf_counter()
    seen = sum(len(images) for images, _ in itertools.islice(loader, batches))
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/people"))
    parser.add_argument("--arch", default="lite0@320")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--json-out", type=Path, default=Path("runs/bench/data_loading.json"))
    args = parser.parse_args()

    arch = ArchSpec.parse(args.arch)
    dataset = training_set([args.data], None, train_transforms(arch.imgsz))
    classes = len(dataset.class_names)
    model = build_detector(arch, classes, pretrained=True).train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(param_groups(model.parameters(), 0.05), lr=1e-4)
    feed = iter(make_loader(dataset, batch=args.batch, workers=args.workers))
    held = next(feed)
    _train_steps(model, optimizer, itertools.repeat(held), 1)  # warm-up
    rates: dict[str, list[float]] = {"loader": [], "in memory": []}
    for _ in range(args.rounds):
        rates["loader"].append(_train_steps(model, optimizer, feed, args.steps))
        rates["in memory"].append(_train_steps(model, optimizer, itertools.repeat(held), args.steps))
    alone = {workers: _loader_alone(dataset, args.batch, workers, 2 * args.steps)
             for workers in sorted({0, args.workers})}

    table = Table("fed by", "median img/s", "min", "max", title=f"training {args.arch} on {args.data}, batch "
                  f"{args.batch}, {torch.get_num_threads()} threads, {args.workers} loader workers")
    for name, values in rates.items():
        table.add_row(name, f"{np.median(values):.2f}", f"{min(values):.2f}", f"{max(values):.2f}")
    console = Console(width=160)
    console.print(table)
    loader, memory = (float(np.median(rates[k])) for k in ("loader", "in memory"))
    for workers, rate in alone.items():
        console.print(f"the loader alone, {workers} workers: {rate:.1f} img/s")
    result = {"arch": str(arch), "data": str(args.data), "batch": args.batch, "workers": args.workers,
              "threads": torch.get_num_threads(), "images_per_s_loader": loader, "images_per_s_in_memory": memory,
              "loader_share": loader / memory, "rounds": rates,
              **{f"loader_alone_{w}_workers_images_per_s": rate for w, rate in alone.items()}}
    atomic_write_json(args.json_out, result)
    console.print(f"with the loader: {100 * loader / memory:.0f}% of the in-memory rate; wrote {args.json_out}")


if __name__ == "__main__":
    main()

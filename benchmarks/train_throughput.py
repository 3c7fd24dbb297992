"""Training throughput of the default detector (lite0@320, 80 classes) on this machine, and peak memory.

Times training steps (forward, loss, backward, AdamW step) on fixed random batches, channels-last (what the engine
uses) and contiguous memory format interleaved round by round, so machine drift hits both alike; medians reported.

    python benchmarks/train_throughput.py [--arch lite0@320] [--batch 16] [--rounds 5] [--steps 3]

Prints a table and writes runs/bench/train_throughput.json (or --json-out).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from edgedet.detect.model import Detector
from edgedet.io import atomic_write_json
from edgedet.space import ArchSpec


def random_batch(batch: int, imgsz: int, classes: int) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, imgsz, imgsz, generator=generator) * 255
    targets = []
    for _ in range(batch):
        xy = torch.rand(6, 2, generator=generator) * imgsz * 0.6
        wh = torch.rand(6, 2, generator=generator) * imgsz * 0.4 + 8
        labels = torch.randint(0, classes, (6,), generator=generator)
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": labels})
    return images, targets


def images_per_second(model: Detector, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                      targets: list[dict[str, torch.Tensor]], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="lite0@320")
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--json-out", type=Path, default=Path("runs/bench/train_throughput.json"))
    args = parser.parse_args()

    arch = ArchSpec.parse(args.arch)
    images, targets = random_batch(args.batch, arch.imgsz, args.classes)
    layouts = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
    runs = {}
    for name, layout in layouts.items():
        model = Detector(arch, args.classes).train().to(memory_format=layout)
        runs[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4), images.contiguous(memory_format=layout))
        images_per_second(*runs[name], targets, 1)  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in layouts}
    for _ in range(args.rounds):
        for name, (model, optimizer, batch) in runs.items():
            rates[name].append(images_per_second(model, optimizer, batch, targets, args.steps))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    table = Table("memory format", "median img/s", "min", "max", title=f"training {args.arch}, batch {args.batch}, "
                  f"{torch.get_num_threads()} threads, {args.classes} classes")
    for name, values in rates.items():
        table.add_row(name, f"{np.median(values):.2f}", f"{min(values):.2f}", f"{max(values):.2f}")
    Console(width=160).print(table)
    print(f"peak resident memory: {peak_mb:.0f} MB (both models)")
    result = {"arch": str(arch), "batch": args.batch, "threads": torch.get_num_threads(),
              "images_per_s": float(np.median(rates["channels_last"])),
              "images_per_s_contiguous": float(np.median(rates["contiguous"])), "peak_rss_mb": peak_mb,
              "rounds": rates}
    atomic_write_json(args.json_out, result)
    print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()

"""Multi-process training on torchrun: the process group, the run folder and the decisions every rank must share,
and the sums the logs need. Rank 0 alone evaluates and writes files; the others wait for it at a barrier whose
timeout (``TIMEOUT``) covers a long evaluation.

Single-process runs never touch any of this (``world_size() == 1``)."""

from __future__ import annotations

import datetime
import os
from typing import TypeVar

import torch
import torch.distributed as dist

TIMEOUT = datetime.timedelta(hours=2)  # how long a rank waits in a collective: rank 0 may be evaluating meanwhile
T = TypeVar("T")


def world_size() -> int:
    """Processes in this run, as torchrun says (1 without it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed() -> int:
    """Join torchrun's process group (once): NCCL with CUDA, gloo on CPUs. This process's rank."""
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=TIMEOUT)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank()


def from_rank0(value: T) -> T:
    """Rank 0's ``value`` on every rank (a run folder's name, an epoch's logged row, a stop decision)."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Each number summed over the ranks: every rank's images and losses count in the logged epoch."""
    keys = sorted(values)
    summed = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(summed)
    return dict(zip(keys, summed.tolist()))


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on one: the ranks stop a time-boxed epoch at the same step."""
    value = torch.tensor([int(flag)])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def finish() -> None:
    """Leave the process group (every rank, at the end or on an error)."""
    if dist.is_initialized():
        dist.destroy_process_group()

"""Checkpoints: everything needed to resume exactly, or to rebuild the model for evaluation and export.

A checkpoint (``last.pt``, ``best.pt``) is a dict: ``model`` and ``ema`` state dicts, ``optimizer``, ``scheduler``,
``epoch`` (completed epochs), ``arch`` (ArchSpec JSON), ``config`` (resolved TrainConfig), ``class_names``,
``category_ids`` (COCO ids, for evaluation), ``history`` (per-epoch metrics), ``best_ap``, ``rng`` states and the
edgedet ``version``. Written atomically, so a crash or Ctrl-C never leaves half a checkpoint.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from torch import nn

from edgedet.detect.model import build_detector
from edgedet.errors import UsageError
from edgedet.io import atomic_write_bytes
from edgedet.space.archspec import ArchSpec


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def read_checkpoint(path: Path) -> dict[str, Any]:
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file: say so in one line
        raise UsageError(f"{path}: not an edgedet checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or "arch" not in state or "model" not in state:
        raise UsageError(f"{path}: not an edgedet checkpoint (no arch/model)")
    return state


def load_detector(path: Path, *, use_ema: bool = True, imgsz: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The trained Detector (EMA weights by default, as evaluated during training) and the checkpoint dict;
    ``imgsz`` rebuilds it for another input size (the network is fully convolutional)."""
    state = read_checkpoint(path)
    arch = ArchSpec.from_json(state["arch"])
    if imgsz:
        arch = arch.with_imgsz(imgsz)
    config = state["config"]
    model = build_detector(arch, len(state["class_names"]), head=config.get("head", "edgedet"),
                           neck_channels=config["neck_channels"])
    model.load_state_dict(state["ema"] if use_ema and state.get("ema") else state["model"])
    return model.eval(), state

"""Atomic file writes: a reader (or a Ctrl-C) never sees half a file, and the old file survives a failure."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def run_dir(stage: str, name: str | None) -> Path:
    """``runs/<stage>/<name>``; without a name, the next free number (``runs/<stage>/1``, ``2``...)."""
    root = Path("runs") / stage
    if name is None:
        taken = [int(p.name) for p in root.glob("*") if p.name.isdigit()] if root.exists() else []
        name = str(max(taken, default=0) + 1)
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link costs no space; across file systems (or where links are not allowed) fall back to a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` that becomes ``out`` when the block succeeds and vanishes when it fails,
    so ``out`` is never half written."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

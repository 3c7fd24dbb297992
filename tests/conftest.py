from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
COCO_MINI = SHARED / "datasets" / "coco-mini"


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Small tensors: one torch thread is faster and steadier than two on a shared 2-core CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def coco_mini() -> Path:
    if not COCO_MINI.is_dir():
        pytest.skip(f"coco-mini not found at {COCO_MINI}")
    return COCO_MINI


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder, so ``runs/`` written by a test never touches the checkout."""
    monkeypatch.chdir(tmp_path)
    return tmp_path

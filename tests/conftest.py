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


@pytest.fixture(scope="session")
def synthetic_small(tmp_path_factory) -> Path:
    """A small synthetic COCO set (circles, squares, triangles) shared by the deploy and camera tests."""
    from edgedet.data.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("data") / "synthetic", train_images=32, val_images=8, size=200)


@pytest.fixture(scope="session")
def checkpoint(synthetic_small, tmp_path_factory) -> Path:
    """A briefly trained lite0@96 detector: real weights for export, quantization and the live loop."""
    from edgedet.train.engine import TrainConfig, train

    folder = tmp_path_factory.mktemp("train")
    train(TrainConfig.from_dict(dict(arch="lite0@96", data=str(synthetic_small), epochs=3, batch=8, workers=0,
                                     eval_every=100, max_eval_images=2, lr=4e-3)), folder)
    return folder / "last.pt"


@pytest.fixture(scope="session")
def exported(checkpoint, tmp_path_factory) -> Path:
    from edgedet.export.onnx_export import export_checkpoint

    out = tmp_path_factory.mktemp("export") / "model.onnx"
    assert export_checkpoint(checkpoint, out).relative_diff < 1e-4
    return out

"""Two processes on this CPU (torchrun, gloo): one run folder, the same weights on every rank, and the numbers of a
one-process run of the same global batch."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import torch
from typer.testing import CliRunner

from edgedet.cli import app


def _log(run: Path) -> list[dict[str, str]]:
    with open(run / "log.csv") as f:
        return list(csv.DictReader(f))


def _torchrun(common: list[str], folder: Path, **env: str) -> subprocess.CompletedProcess:
    """``edgedet train`` on 2 gloo ranks through tests/ddp_train.py; a hang would hit the timeout."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(Path(__file__).with_name("ddp_train.py")), "train", *common, "--batch", "4"],
                          cwd=folder, env=os.environ | {"EDGEDET_TEST_WEIGHTS": str(folder), "OMP_NUM_THREADS": "1"}
                          | env, capture_output=True, text=True, timeout=240)


def test_two_ranks_train_one_run_with_equal_weights_that_tracks_one_process_of_the_global_batch(synthetic_small,
                                                                                             in_tmp):
    common = ["--data", str(synthetic_small), "--arch", "tiny@64", "--epochs", "2", "--workers", "0",
              "--eval-every", "100", "--set", "warmup_epochs=0.5", "--scratch"]
    launched = _torchrun(common, in_tmp)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert sorted(p.name for p in (in_tmp / "runs/train").iterdir()) == ["1"]  # one folder, numbered by rank 0
    ranks = [torch.load(in_tmp / f"rank{r}.pt") for r in (0, 1)]
    statistics = [k for k in ranks[0] if "running_" in k or "num_batches" in k]  # BatchNorm's, from each rank's batch
    assert len(statistics) < len(ranks[0]) and all(torch.equal(ranks[0][k], ranks[1][k])
                                                   for k in ranks[0] if k not in statistics)  # DDP kept them in step
    saved = torch.load(in_tmp / "runs/train/1/last.pt", weights_only=False)["model"]
    assert all(torch.equal(saved[k], ranks[0][k]) for k in saved)

    single = CliRunner().invoke(app, ["train", *common, "--batch", "8", "--name", "single"])
    assert single.exit_code == 0, single.output
    two, one = _log(in_tmp / "runs/train/1"), _log(in_tmp / "runs/train/single")
    assert [row["epoch"] for row in two] == [row["epoch"] for row in one] == ["1", "2"]
    for key in ("loss_cls", "loss_box"):  # the same global batch: losses of the same size, epoch for epoch
        for a, b in zip(two, one):
            assert abs(float(a[key]) / float(b[key]) - 1) < 0.25, (key, a[key], b[key])
    assert float(two[0]["lr"]) == float(one[0]["lr"])  # the same schedule: as many steps per epoch


def test_a_failing_rank_ends_the_run_with_its_line_not_a_hang(synthetic_small, in_tmp):
    common = ["--data", str(synthetic_small), "--arch", "tiny@64", "--epochs", "2", "--workers", "0", "--scratch",
              "--name", "failing"]
    failed = _torchrun(common, in_tmp, EDGEDET_TEST_FAIL_RANK="1")
    assert failed.returncode != 0 and "error: rank 1 gave out" in failed.stderr
    assert not (in_tmp / "runs/train/failing/last.pt").exists()  # nothing passed off as a finished epoch

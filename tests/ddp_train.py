"""Run by tests/test_distributed.py under torchrun: ``edgedet train ARGS``, each rank then writing its final weights
to ``$EDGEDET_TEST_WEIGHTS/rank<R>.pt`` so the test can compare the ranks (rank 0 alone writes the run); with
``$EDGEDET_TEST_FAIL_RANK`` set, that rank fails in its first epoch, as a rank whose disk or GPU gives out would."""

import os
import sys
from pathlib import Path

import torch

from edgedet.cli import main
from edgedet.errors import EdgedetError
from edgedet.train import engine

fit = engine.Trainer.fit
train_epoch = engine.Trainer.train_epoch


def fit_then_dump(trainer: engine.Trainer) -> dict:
    result = fit(trainer)
    torch.save(trainer.model.state_dict(), Path(os.environ["EDGEDET_TEST_WEIGHTS"]) / f"rank{trainer.rank}.pt")
    return result


def failing_epoch(trainer: engine.Trainer, epoch: int) -> dict:
    if trainer.rank == int(os.environ.get("EDGEDET_TEST_FAIL_RANK", "-1")):
        raise EdgedetError(f"rank {trainer.rank} gave out")
    return train_epoch(trainer, epoch)


if __name__ == "__main__":
    engine.Trainer.fit = fit_then_dump
    engine.Trainer.train_epoch = failing_epoch
    sys.argv = ["edgedet", *sys.argv[1:]]
    main()

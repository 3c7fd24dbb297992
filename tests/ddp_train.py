"""Run by tests/test_distributed.py under torchrun: ``edgedet train ARGS``, each rank then writing its final weights
to ``$EDGEDET_TEST_WEIGHTS/rank<R>.pt`` so the test can compare the ranks (rank 0 alone writes the run)."""

import os
import sys
from pathlib import Path

import torch

from edgedet.cli import main
from edgedet.train import engine

fit = engine.Trainer.fit


def fit_then_dump(trainer: engine.Trainer) -> dict:
    result = fit(trainer)
    torch.save(trainer.model.state_dict(), Path(os.environ["EDGEDET_TEST_WEIGHTS"]) / f"rank{trainer.rank}.pt")
    return result


if __name__ == "__main__":
    engine.Trainer.fit = fit_then_dump
    sys.argv = ["edgedet", *sys.argv[1:]]
    main()

"""Training: it learns, it resumes exactly, Ctrl-C keeps the work, settings are checked."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from edgedet.cli import app
from edgedet.data.synthetic import make_synthetic
from edgedet.errors import UsageError
from edgedet.train.checkpoint import load_detector, read_checkpoint
from edgedet.train.engine import Trainer, TrainConfig, train


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("data") / "synthetic", train_images=48, val_images=12, size=256)


def _config(data, **overrides):
    settings = dict(arch="tiny@64", data=str(data), epochs=2, batch=8, workers=0, eval_every=100,
                    max_eval_images=4, seed=3)
    return TrainConfig.from_dict(settings | overrides)


def test_training_on_synthetic_data_learns(synthetic, tmp_path):
    final = train(_config(synthetic, arch="lite0@128", epochs=15, lr=4e-3, eval_every=5, max_eval_images=None),
                  tmp_path)
    assert final["AP50"] > 25.0  # 90 steps from ImageNet weights reach ~34; an untrained detector scores ~0
    model, state = load_detector(tmp_path / "best.pt")
    assert state["class_names"] == ["circle", "square", "triangle"] and model.arch.imgsz == 128


def test_a_time_budget_anneals_on_time_even_inside_one_epoch(synthetic, tmp_path, monkeypatch):
    """A clock where every step takes 1 s: with 6-step epochs and a 40 s budget the cosine is re-planned to end at
    the budget, whatever ``epochs`` said, and the run stops there at the schedule's floor; with a budget shorter
    than one epoch it stops inside the first one, annealed too."""
    import types

    import edgedet.train.engine as engine

    clock = iter(range(10**6))
    monkeypatch.setattr(engine, "time", types.SimpleNamespace(perf_counter=lambda: next(clock) / 2))  # 2 per step
    monkeypatch.setattr(engine, "PLAN_EVERY", 2)
    for budget, most_steps in (("40s", 40), ("4s", 5)):
        trainer = Trainer(_config(synthetic, epochs=30, time=budget, eval_every=100, warmup_epochs=0),
                          tmp_path / budget)
        final = trainer.fit()
        steps = trainer.scheduler.last_epoch
        assert 0 < steps <= most_steps and trainer.schedule.total_steps == steps
        assert final["lr"] == pytest.approx(2e-3 * 0.05, rel=0.2)  # the cosine's end: lr · min_lr_ratio
        assert final["epochs"] == math.ceil(steps / len(trainer.loader)) < 30


def test_resume_continues_exactly(synthetic, tmp_path):
    train(_config(synthetic), tmp_path / "straight")
    train(_config(synthetic, epochs=1), tmp_path / "split")
    train(_config(synthetic), tmp_path / "split", resume=True)
    straight = read_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    resumed = read_checkpoint(tmp_path / "split" / "last.pt")["model"]
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert read_checkpoint(tmp_path / "split" / "last.pt")["epoch"] == 2


def test_ctrl_c_mid_epoch_keeps_the_finished_epoch_and_resume_continues_exactly(synthetic, tmp_path, monkeypatch):
    train(_config(synthetic), tmp_path / "straight")
    clip, steps = torch.nn.utils.clip_grad_norm_, []

    def interrupted_at_step_9(*args, **kwargs):  # the 3rd of epoch 2's 6 steps, after its backward
        steps.append(1)
        if len(steps) == 9:
            raise KeyboardInterrupt
        return clip(*args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", interrupted_at_step_9)
    with pytest.raises(KeyboardInterrupt):
        train(_config(synthetic), tmp_path / "split")
    assert read_checkpoint(tmp_path / "split" / "last.pt")["epoch"] == 1  # the finished epoch, untouched
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    train(_config(synthetic), tmp_path / "split", resume=True)
    straight = read_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    resumed = read_checkpoint(tmp_path / "split" / "last.pt")["model"]
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert (tmp_path / "split" / "log.csv").read_text().count("\n") == 3  # header + 2 epochs, none twice


def test_cli_resume_keeps_the_runs_epochs_and_a_fresh_run_never_lands_on_one(synthetic, in_tmp):
    args = ["train", "--data", str(synthetic), "--arch", "tiny@64", "--batch", "8", "--workers", "0",
            "--eval-every", "100", "--name", "r"]
    last = in_tmp / "runs" / "train" / "r" / "last.pt"
    assert CliRunner().invoke(app, [*args, "--epochs", "1"]).exit_code == 0
    again = CliRunner().invoke(app, [*args, "--epochs", "1"])
    assert isinstance(again.exception, UsageError) and "already holds a train run: add --resume" in str(again.exception)
    assert CliRunner().invoke(app, [*args, "--resume"]).exit_code == 0  # its own 1 epoch: already done
    assert read_checkpoint(last)["epoch"] == 1
    assert CliRunner().invoke(app, [*args, "--resume", "--epochs", "2"]).exit_code == 0
    assert read_checkpoint(last)["epoch"] == 2


def test_unknown_setting_suggests_the_right_one():
    with pytest.raises(UsageError, match="unknown training setting 'epoch' .did you mean 'epochs'"):
        TrainConfig.from_dict({"epoch": 3})


def test_every_setting_is_reachable_with_set_and_a_wrong_type_is_one_line(synthetic, in_tmp):
    args = ["train", "--data", str(synthetic), "--arch", "tiny@64", "--batch", "8", "--workers", "0", "--epochs", "1",
            "--eval-every", "100", "--set", "ema_decay=0.99", "--set", "warmup_epochs=0.5"]
    assert CliRunner().invoke(app, [*args, "--name", "s"]).exit_code == 0
    saved = json.loads((in_tmp / "runs" / "train" / "s" / "config.json").read_text())
    assert saved["ema_decay"] == 0.99 and saved["warmup_epochs"] == 0.5
    wrong = CliRunner().invoke(app, [*args, "--set", "ema_decay=high", "--name", "t"])
    assert wrong.exit_code != 0 and "training setting ema_decay='high': expected float" in str(wrong.exception)
    assert not (in_tmp / "runs" / "train" / "t" / "config.json").exists()
    with pytest.raises(UsageError, match="epochs=2.5: expected int"):
        TrainConfig.from_dict({"data": ["x"], "epochs": 2.5})


def test_resume_without_a_checkpoint_is_a_clear_error(synthetic, tmp_path):
    with pytest.raises(UsageError, match="no .*last.pt to resume from"):
        train(_config(synthetic), tmp_path, resume=True)


def test_static_assign_epochs_none_keeps_prior_box_matching_throughout(synthetic, tmp_path):
    trainer = Trainer(_config(synthetic, epochs=2, static_assign_epochs=None), tmp_path)
    trainer.train_epoch(1)
    assert trainer.model.loss.static
    trainer.config.static_assign_epochs = 1
    trainer.train_epoch(1)
    assert not trainer.model.loss.static  # task-aligned from epoch 1 on


def test_a_resume_that_changes_a_setting_is_refused_naming_it(synthetic, in_tmp):
    args = ["train", "--data", str(synthetic), "--arch", "tiny@64", "--batch", "8", "--workers", "0", "--epochs", "1",
            "--eval-every", "100", "--name", "r"]
    assert CliRunner().invoke(app, args).exit_code == 0
    changed = CliRunner().invoke(app, [*args, "--resume", "--lr", "0.5", "--set", "seed=3"])
    assert isinstance(changed.exception, UsageError)
    assert "made with another lr, seed: resume it without changing them" in str(changed.exception)
    assert CliRunner().invoke(app, [*args, "--resume", "--workers", "1"]).exit_code == 0  # hardware may change

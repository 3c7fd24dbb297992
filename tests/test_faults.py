"""Faults a user meets off the happy path: a killed process, a full disk, corrupt files, garbage text. Each leaves
nothing a later command would take as whole, loses nothing the user had, and says one line."""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from edgedet.cli import _settings, app, main
from edgedet.data.formats import Skipped, parse_yolo_labels, yolo_names
from edgedet.devices.latency import LatencyLUT
from edgedet.devices.profile import load_profile
from edgedet.errors import EdgedetError
from edgedet.runtime.onnx_detector import OnnxDetector
from edgedet.space.archspec import ArchSpec
from edgedet.train.checkpoint import read_checkpoint
from edgedet.train.config import TrainConfig

ENV = os.environ | {"OMP_NUM_THREADS": "1"}  # the same arithmetic in every child, so weights compare exactly
GARBAGE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _edgedet(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgedet", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=300)


def _kill_when(process: subprocess.Popen, ready, timeout: float = 120) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` holds (or when it ends first)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.02)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait()


def test_kill_9_during_training_then_resume_gives_the_weights_of_an_uninterrupted_run(synthetic_small, in_tmp):
    args = ["train", "--data", str(synthetic_small), "--arch", "tiny@64", "--batch", "8", "--workers", "0",
            "--epochs", "4", "--eval-every", "100", "--scratch"]
    assert _edgedet(*args, "--name", "straight", cwd=in_tmp).returncode == 0
    last = in_tmp / "runs/train/killed/last.pt"
    killed = subprocess.Popen([sys.executable, "-m", "edgedet", *args, "--name", "killed"], cwd=in_tmp, env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(killed, last.exists)  # epoch 1 saved, epoch 2 under way
    assert killed.returncode == -signal.SIGKILL
    epoch_at_kill = read_checkpoint(last)["epoch"]
    assert 1 <= epoch_at_kill < 4
    resumed = _edgedet(*args, "--name", "killed", "--resume", cwd=in_tmp)
    assert resumed.returncode == 0, resumed.stderr
    straight, after = (read_checkpoint(in_tmp / f"runs/train/{n}/last.pt")["model"] for n in ("straight", "killed"))
    assert all(torch.equal(straight[k], after[k]) for k in straight)


@pytest.mark.parametrize("delay", [0.5, 2.0, 4.0])
def test_kill_9_during_export_and_quantize_leaves_no_file_that_looks_whole(checkpoint, exported, synthetic_small,
                                                                          in_tmp, delay):
    for command, out in ((["export", str(checkpoint), "--out", "m.onnx"], "m.onnx"),
                         (["quantize", str(exported), "--data", str(synthetic_small), "--calib-images", "8",
                           "--out", "q.onnx"], "q.onnx")):
        process = subprocess.Popen([sys.executable, "-m", "edgedet", *command], cwd=in_tmp, env=ENV,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + delay
        _kill_when(process, lambda deadline=deadline: time.monotonic() > deadline)
        target = in_tmp / out
        if target.exists():  # written whole, with its sidecar, or not at all
            assert OnnxDetector(target).card.imgsz == 96
        else:
            assert not target.with_suffix(".json").exists()


def test_kill_9_during_profile_build_leaves_no_profile_that_looks_whole(in_tmp):
    folder = in_tmp / "runs/profile/k"
    process = subprocess.Popen([sys.executable, "-m", "edgedet", "profile", "build", "--name", "k", "--space", "tiny",
                                "--imgsz", "64", "--rounds", "2"], cwd=in_tmp, env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(process, lambda: any(folder.glob("*.json")))  # the moment the LUT lands, before or after its profile
    luts = list(folder.glob("*.json"))
    assert luts and all(LatencyLUT.load(lut).entries for lut in luts)  # whatever a kill left reads whole
    if (folder / "profile.yaml").exists():  # the LUT is written before its profile: a profile means a whole LUT
        assert load_profile(folder / "profile.yaml").latency_model().entries


def test_truncated_or_corrupt_files_are_one_line_and_exit_2(checkpoint, exported, in_tmp):
    (in_tmp / "half.pt").write_bytes(checkpoint.read_bytes()[:5000])
    (in_tmp / "half.onnx").write_bytes(exported.read_bytes()[:5000])
    (in_tmp / "half.json").write_text(exported.with_suffix(".json").read_text())
    (in_tmp / "m.onnx").write_bytes(exported.read_bytes())
    (in_tmp / "m.json").write_text('{"format": "edgedet-model/1", "arch": ')
    profile = in_tmp / "runs/profile/broken"
    profile.mkdir(parents=True)
    (profile / "profile.yaml").write_text("id: broken\ndescription: x\nruntime: {}\nlatency: {source: lut, luts: "
                                          "{fp32: broken.fp32.json}}\n")
    (profile / "broken.fp32.json").write_text('{"format": "edgedet-lut/1", "entries": {"stem": ')
    (in_tmp / "runs/profile/garbage").mkdir()
    (in_tmp / "runs/profile/garbage/profile.yaml").write_text("id: [unclosed\n")
    cases = [(["export", "half.pt"], "not an edgedet checkpoint"),
             (["eval", "half.onnx"], "not a loadable ONNX model"),
             (["eval", "m.onnx"], "not valid JSON"),
             (["arch", "show", "lite0@320", "--device", "broken"], "broken.fp32.json"),
             (["profile", "show", "garbage"], "not valid YAML")]
    for args, message in cases:
        result = _edgedet(*args, cwd=in_tmp)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, (args, result.stderr)
        assert result.stderr.startswith("error: ") and message in result.stderr, (args, result.stderr)
    assert _edgedet("profile", "show", "jetson", cwd=in_tmp).returncode == 0  # a broken profile spoils only itself


def test_a_failing_checkpoint_write_keeps_the_previous_checkpoint_and_says_one_line(synthetic_small, in_tmp,
                                                                                   monkeypatch, capsys):
    args = ["train", "--data", str(synthetic_small), "--arch", "tiny@64", "--batch", "8", "--workers", "0",
            "--eval-every", "100", "--scratch", "--name", "full"]
    assert CliRunner().invoke(app, [*args, "--epochs", "1"]).exit_code == 0
    last = in_tmp / "runs/train/full/last.pt"
    before = last.read_bytes()

    def disk_full(*_: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(last))

    monkeypatch.setattr("edgedet.io.os.replace", disk_full)
    monkeypatch.setattr(sys, "argv", ["edgedet", *args, "--epochs", "2", "--resume"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == f"error: {last}: No space left on device"
    assert last.read_bytes() == before  # the previous checkpoint, whole
    assert not list(last.parent.glob(".last.pt.*"))  # and no temporary file left behind


@GARBAGE
@given(st.text(max_size=80))
def test_archspec_strings_parse_or_fail_with_one_clear_error(text):
    try:
        ArchSpec.parse(text)
    except EdgedetError as err:  # the CLI prints it as one line (``main``); anything else would be a traceback
        assert str(err)


@GARBAGE
@given(st.text(max_size=200))
def test_profile_yaml_loads_or_fails_with_one_clear_error(tmp_path, text):
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    try:
        load_profile(path)
    except EdgedetError as err:
        assert str(path) in str(err)


@GARBAGE
@given(st.text(max_size=200))
def test_yolo_label_files_keep_their_good_lines_and_count_the_bad(tmp_path, text):
    path = tmp_path / "a.txt"
    path.write_text(text)
    skipped = Skipped()
    boxes = parse_yolo_labels(path, 320, 240, 3, skipped)
    assert all(0 <= label < 3 and len(box) == 4 for label, box in boxes)


@GARBAGE
@given(st.one_of(st.text(max_size=120), st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
                 .map(yaml.safe_dump)))
def test_data_yaml_gives_names_or_one_clear_error(tmp_path, text):
    (tmp_path / "data.yaml").write_text(text)
    try:
        names = yolo_names(tmp_path)
        assert all(isinstance(n, str) for n in names)
    except EdgedetError as err:
        assert "data.yaml" in str(err)


@GARBAGE
@given(st.lists(st.text(max_size=30), max_size=3))
def test_set_values_become_settings_or_one_clear_error(items):
    try:
        TrainConfig.from_dict(_settings(None, {"data": ["d"]}, items))
    except EdgedetError as err:  # the CLI prints it as one line (``main``); anything else would be a traceback
        assert str(err)

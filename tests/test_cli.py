"""The CLI contract: every command teaches with --help, bad input is one line and exit 2."""

import json
import subprocess
import sys

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from edgedet.cli import app

runner = CliRunner()


def _commands(group=get_command(app), prefix=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, prefix + (name,))
        else:
            yield prefix + (name,)


@pytest.mark.parametrize("command", list(_commands()), ids=" ".join)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Example: edgedet " + " ".join(command) in result.output


def _edgedet(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgedet", *args], capture_output=True, text=True, cwd=cwd)


def test_python_m_edgedet_help():
    result = _edgedet("--help")
    assert result.returncode == 0 and "profile" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["arch", "show", "lite0@320:k3_e1,nope"], "unknown op 'nope'"),
    (["profile", "show", "jetsonn"], "unknown device 'jetsonn'. Did you mean: jetson"),
    (["profile", "build", "--precision", "fp64"], "--precision fp64"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, in_tmp):
    result = _edgedet(*args, cwd=in_tmp)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_arch_show_prints_layers_and_writes_json(in_tmp):
    result = runner.invoke(app, ["arch", "show", "lite0@320", "--device", "jetson", "--json-out", "a.json"],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "15 (tap)" in result.output and "k5_e6" in result.output
    totals = json.loads((in_tmp / "a.json").read_text())
    assert totals["params"] == 2_959_936 and totals["ms"] > 0 and 700 < totals["MMACs"] < 800


def test_progress_away_from_a_terminal_is_a_line_a_minute(capsys):
    """A job writing to a log file shows it is alive: a plain line per task each minute, none when disabled."""
    from rich.progress import TextColumn

    from edgedet.progress import LoggedProgress

    now = [0.0]
    for disable in (False, True):
        with LoggedProgress(TextColumn("{task.description}"), disable=disable, get_time=lambda: now[0]) as progress:
            task = progress.add_task("training", total=100, status="")
            for step in range(100):
                now[0] += 1.5  # 150 s in all: lines at 60 and 120 s
                progress.update(task, advance=1, status=f"loss {step}")
        lines = capsys.readouterr().err.splitlines()
        if disable:
            assert lines == []
        else:
            assert [line.split(",")[0] for line in lines] == ["training: 40/100", "training: 80/100"]
            assert lines[0].endswith("min left  loss 39")

"""The ``edgedet`` command line: thin typer commands, each delegating to one library function.

Expected failures (``EdgedetError``) become one line on stderr and exit 2 (bad input) or 1 (failure while running).
Heavy imports (torch) happen inside the commands that need them, so ``--help`` and runtime commands stay fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from edgedet import __version__
from edgedet.errors import EdgedetError, UsageError

app = typer.Typer(
    help="Search, train, quantize and run a fast object detector for a chosen edge device.\n\n"
    "Example: edgedet profile build --name host && edgedet profile check host",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
profile_app = typer.Typer(help="Device profiles and their latency look-up tables (LUTs).", no_args_is_help=True)
arch_app = typer.Typer(help="Architectures (ArchSpec strings or arch.json files).", no_args_is_help=True)
app.add_typer(profile_app, name="profile")
app.add_typer(arch_app, name="arch")
console = Console(width=None if sys.stdout.isatty() else 160)  # tables stay readable in logs

JsonOut = Annotated[Optional[Path], typer.Option("--json-out", help="Also write the numbers as flat JSON here.")]


def _version(value: bool) -> None:
    if value:
        console.print(f"edgedet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """edgedet: profile a device, search a backbone for it, train, quantize, evaluate and run it live."""


def _write_json(path: Optional[Path], data: dict) -> None:
    if path:
        from edgedet.io import atomic_write_json

        atomic_write_json(path, data)
        console.print(f"wrote {path}")


@profile_app.command("list")
def profile_list() -> None:
    """List the known device profiles (shipped and built here).

    Example: edgedet profile list
    """
    from edgedet.devices.profile import list_profiles

    table = Table("id", "aliases", "latency source", "precisions", "description")
    for p in list_profiles():
        table.add_row(p.id, ", ".join(p.aliases), p.latency["source"], ", ".join(p.precisions), p.description)
    console.print(table)


@profile_app.command("show")
def profile_show(device: Annotated[str, typer.Argument(help="Profile id or alias, e.g. jetson.")]) -> None:
    """Print a profile: hardware, runtime, where its latencies come from and how far to trust them.

    Example: edgedet profile show jetson
    """
    from edgedet.devices.profile import get_profile

    profile = get_profile(device)
    console.print(f"[bold]{profile.id}[/] ({profile.path})")
    console.print(profile.to_yaml(), markup=False, highlight=False)


@profile_app.command("build")
def profile_build(
    name: Annotated[str, typer.Option(help="Profile id to write (runs/profile/NAME/).")] = "host",
    space: Annotated[str, typer.Option(help="Search space whose layers to measure: lite0, fbnet or tiny.")] = "lite0",
    imgsz: Annotated[int, typer.Option(help="Input size (a multiple of 32).")] = 320,
    width_mult: Annotated[float, typer.Option(help="Width multiplier of the space.")] = 1.0,
    precision: Annotated[str, typer.Option(help="fp32, or int8 (ONNX Runtime static QDQ).")] = "fp32",
    threads: Annotated[int, typer.Option(help="ONNX Runtime intra-op threads.")] = 1,
    rounds: Annotated[int, typer.Option(help="Interleaved timing rounds (more = steadier, slower).")] = 15,
    out: Annotated[Optional[Path], typer.Option(help="Profile folder (default runs/profile/NAME).")] = None,
) -> None:
    """Measure a latency LUT on this machine with ONNX Runtime: every (layer shape, op) as a one-block model,
    timed interleaved with a reference model. Re-running with another --space/--imgsz/--precision adds to it.

    Example: edgedet profile build --name host --precision int8
    """
    from edgedet.devices.builder import BuildSettings, build_lut
    from edgedet.space import get_space

    if precision not in ("fp32", "int8"):
        raise UsageError(f"--precision {precision}: measured LUTs are fp32 or int8")
    if threads < 1 or rounds < 1:
        raise UsageError("--threads and --rounds must be at least 1")
    settings = BuildSettings(name, get_space(space, width_mult=width_mult), imgsz, precision, threads, rounds)
    profile = build_lut(settings, out or Path("runs") / "profile" / name)
    console.print(f"wrote profile '{profile.id}' to {profile.path}; check it with `edgedet profile check {name}`")


@profile_app.command("check")
def profile_check(
    device: Annotated[str, typer.Argument(help="A profile built on this machine, e.g. host.")] = "host",
    samples: Annotated[int, typer.Option(help="Random architectures to measure.")] = 50,
    precision: Annotated[Optional[str], typer.Option(help="fp32 or int8 (default: the profile's).")] = None,
    space: Annotated[Optional[str], typer.Option(help="Space to sample from (default: the LUT's first).")] = None,
    rounds: Annotated[int, typer.Option(help="Interleaved timing rounds.")] = 10,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 1,
    json_out: JsonOut = None,
) -> None:
    """Predicted (LUT) vs measured latency of random whole backbones: error, share within ±10%, Spearman.

    Example: edgedet profile check host --samples 50 --json-out check.json
    """
    from edgedet.devices.builder import get_or_build_profile
    from edgedet.devices.check import check_profile, rows_json, summarize

    if samples < 3:
        raise UsageError("--samples must be at least 3 for a rank correlation")
    rows, speed = check_profile(get_or_build_profile(device), samples=samples, precision=precision, space=space,
                                rounds=rounds, seed=seed)
    table = Table("arch", "MMACs", "predicted ms", "measured ms", "error %")
    for r in rows:
        table.add_row(r.arch[:60] + "…", f"{r.macs / 1e6:.0f}", f"{r.predicted_ms:.3f}", f"{r.measured_ms:.3f}",
                      f"{r.error_pct:+.1f}")
    console.print(table)
    summary = summarize(rows, speed)
    console.print(
        f"within ±10%: {summary['within_10pct']:.0%}  Spearman: {summary['spearman']:.3f}  "
        f"(MACs alone: {summary['flops_spearman']:.3f})  mean |error|: {summary['mean_abs_pct_error']:.1f}%  "
        f"max: {summary['max_abs_pct_error']:.1f}%  machine speed vs build: x{speed:.2f}"
    )
    _write_json(json_out, summary | {"device": device, "rows": rows_json(rows)})


@arch_app.command("show")
def arch_show(
    spec: Annotated[str, typer.Argument(help="ArchSpec string (e.g. lite0@320) or arch.json.")],
    device: Annotated[Optional[str], typer.Option(help="Add each layer's latency from this profile.")] = None,
    precision: Annotated[Optional[str], typer.Option(help="fp32, fp16 or int8 (default: the profile's).")] = None,
    json_out: JsonOut = None,
) -> None:
    """Per-layer table of an architecture: op, shapes, parameters, MACs and (with --device) latency.

    Example: edgedet arch show lite0@320 --device jetson
    """
    from edgedet.space.archspec import ArchSpec
    from edgedet.space.report import arch_rows

    arch = ArchSpec.load(spec)
    model = None
    if device:
        from edgedet.devices.builder import get_or_build_profile

        model = get_or_build_profile(device).latency_model(precision)
    rows, totals = arch_rows(arch, model)
    table = Table(*rows[0].keys(), title=str(arch))
    for row in rows + [totals]:
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)
    _write_json(json_out, {"arch": str(arch), **{k: v for k, v in totals.items() if k != "layer"}})


def main() -> None:
    """Console entry point: run the app, turning expected errors into one line and an exit code."""
    try:
        app()
    except EdgedetError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)

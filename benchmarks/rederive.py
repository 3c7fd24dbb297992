"""A finished search's θ derived again at another latency target, without searching again (issue 25):

    python benchmarks/rederive.py runs/search/NAME --target-ms 4.94 [--out JSON]

The derivation is exact to the DP's resolution: a target even microseconds below an architecture's predicted
latency rules it out. At "Lite0@320's latency" a target rounded down (4.9373 against Lite0@320's 4.93733) forces
the search to depart from Lite0 somewhere, whatever θ learned. Searching again at the right target repeats an hour
of θ steps whose latency loss differs by a ratio of 1.0006; this takes the trained supernet instead.

The search's checkpoint and settings are copied into ``runs/search/NAME-at-<ms>ms/`` with only ``target_ms``
changed, and that copy is resumed (``edgedet search --resume``): no epoch is left, so it only derives (input size,
θ's departures verified against the prior-only derivation by the supernet's fold scores), scoring only the
derivations the original had not. Prints what it derived and writes it as JSON, with the target θ was trained at
(``theta_trained_at_ms``), so the result is never passed off as a search at the new target."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from _common import console, run_child  # benchmarks/ is our folder

from edgedet.io import atomic_write_json

COPIED = ("last.pt", "log.csv", "arch.json")  # the trained supernet, its history, and the scores already made


def copy_at_target(run: Path, target_ms: float) -> Path:
    """``run``'s checkpoint and settings in a sibling folder whose config.json has ``target_ms`` instead."""
    copy = run.with_name(f"{run.name}-at-{target_ms:g}ms")
    if not (copy / "config.json").exists():
        copy.mkdir(parents=True, exist_ok=True)
        for name in COPIED:
            shutil.copy2(run / name, copy / name)
        config = json.loads((run / "config.json").read_text())
        atomic_write_json(copy / "config.json", config | {"target_ms": [target_ms]})
    return copy


CHOICE = ("theta_derivation", "theta_vs_prior_only", "prior_only", "reference_size", "input_sizes")  # the search's
# choices and their scores (Searcher._choose), kept for the derivation before and after


def rederive(run: Path, target_ms: float) -> dict[str, Any]:
    """The search in ``run`` derived at ``target_ms`` (a single-device search): the architecture, θ's own pick and
    its gap to the prior-only one, every size's derivations and scores, the same of the search's own derivation
    (``before``), where it was derived again, and what that cost."""
    config = json.loads((run / "config.json").read_text())
    if len(config["devices"]) != 1:
        raise SystemExit(f"{run} searched for {len(config['devices'])} devices; rederive.py takes one target, so a "
                         "single-device search")
    copy = copy_at_target(run, target_ms)
    devices = [arg for device in config["devices"] for arg in ("--device", device)]
    cost = run_child(["search", *devices, "--target-ms", f"{target_ms:g}"], copy)  # the copy's own settings
    derived = json.loads((copy / "arch.json").read_text())
    provenance, before = derived["provenance"], json.loads((run / "arch.json").read_text())
    return {"search": str(run), "derived_in": str(copy), "theta_trained_at_ms": config["target_ms"],
            "derived_at_ms": target_ms, "arch": derived["arch"],
            "predicted_ms": provenance["devices"][0]["predicted_ms"],
            **{key: provenance.get(key) for key in CHOICE},
            "before": {"arch": before["arch"], **{key: before["provenance"].get(key) for key in CHOICE}},
            "rederive_cost": cost}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished search's folder (runs/search/NAME)")
    parser.add_argument("--target-ms", type=float, required=True, help="the latency target to derive at")
    parser.add_argument("--out", type=Path, default=None, help="where the JSON goes (default: <copy>/rederived.json)")
    args = parser.parse_args()
    if not (args.run / "last.pt").is_file() or not (args.run / "arch.json").is_file():
        raise SystemExit(f"{args.run}: not a finished search (no last.pt and arch.json); give runs/search/NAME")
    result = rederive(args.run, args.target_ms)
    gap = result["theta_vs_prior_only"] or {}
    console.print(f"θ trained at {result['theta_trained_at_ms']} ms, derived at {args.target_ms:g} ms: "
                  f"{result['arch']} ({result['predicted_ms']} ms); before: {result['before']['arch']}")
    if gap:
        console.print(f"θ's own {result['theta_derivation']}: {gap['gap']:+.3f} ± {gap['gap_se']:.3f} over the "
                      f"prior-only {result['prior_only']} ({'kept' if gap['beats'] else 'within the noise'})")
    out = args.out or Path(result["derived_in"]) / "rederived.json"
    atomic_write_json(out, result)
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()

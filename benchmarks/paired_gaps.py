"""Every pair of models' paired AP gap in a committed ``search_matched.py`` JSON, re-read without training anything
(the benchmark itself reports only the searched model's gaps):

    python benchmarks/paired_gaps.py benchmarks/results/2026-12-07/search25-3.456ms-seed1.json [--out GAPS.json]

Prints a table (people val and, where the JSON has it, the ``--also-eval`` val) and writes the gaps as JSON, keyed
``<model>-<other>``: gap, gap_se, paired_seeds, beats (``edgedet.stats.paired_gap``)."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

from _common import console  # benchmarks/ is our folder
from rich.table import Table

from edgedet.io import atomic_write_json
from edgedet.stats import paired_gap


def gaps(matched: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each ordered pair of the JSON's models trained on shared seeds: its paired gap, on ``--data``'s val and on
    the ``also`` val (``also_`` keys)."""
    rows = {row["model"]: row for row in matched["rows"]}
    result = {}
    for ours, theirs in itertools.combinations(rows, 2):
        if not set(rows[ours]["seeds"]) & set(rows[theirs]["seeds"]):
            continue
        result[f"{ours}-{theirs}"] = paired_gap(rows[ours], rows[theirs]) | (
            {f"also_{key}": value for key, value in paired_gap(rows[ours]["also"], rows[theirs]["also"]).items()}
            if "also" in rows[ours] else {})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("matched", type=Path, help="a search_matched.py JSON (its rows with AP_per_seed and seeds)")
    parser.add_argument("--out", type=Path, default=None, help="where the gaps' JSON goes (default: none)")
    args = parser.parse_args()
    result = gaps(json.loads(args.matched.read_text()))
    table = Table("pair", "AP gap ± s.e.", "also-eval gap ± s.e.", "paired seeds", title=str(args.matched))
    for pair, gap in result.items():
        text = [f"{gap[f'{p}gap']:+.2f}" + ("" if gap[f"{p}gap_se"] is None else f" ± {gap[f'{p}gap_se']:.2f}")
                if f"{p}gap" in gap else "-" for p in ("", "also_")]
        table.add_row(pair, *text, str(gap["paired_seeds"]))
    console.print(table)
    if args.out:
        atomic_write_json(args.out, {"matched": str(args.matched), "gaps": result})


if __name__ == "__main__":
    main()

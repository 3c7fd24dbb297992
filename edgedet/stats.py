"""Comparing trained models over seeds: one model's AP moves between seeds by as much as the gaps between models, so
a comparison pairs the seeds both trained and counts a win only beyond the noise. numpy only (no torch)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def over_seeds(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """One model's trainings keyed by seed -> mean AP and AP50 (what a table shows), each seed's AP (what
    ``paired_gap`` pairs) and the largest CPU and wall minutes of one training (what a per-model budget limits)."""
    results = list(runs.values())
    return {"AP": float(np.mean([r["AP"] for r in results])), "AP50": float(np.mean([r["AP50"] for r in results])),
            "seeds": list(runs), "AP_per_seed": [r["AP"] for r in results],
            "cpu_min": max(r["cpu_min"] for r in results), "wall_min": max(r["wall_min"] for r in results)}


def paired_gap(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """AP gap (ours − theirs) over the seeds both trained (``over_seeds`` results), its standard error, and whether
    ours beats theirs: only beyond two standard errors, since pairing by seed removes the data-order noise both share
    but not the rest (with one paired seed there is no noise estimate and the plain gap decides)."""
    theirs_by_seed = dict(zip(theirs["seeds"], theirs["AP_per_seed"]))
    gaps = np.array([ap - theirs_by_seed[seed] for seed, ap in zip(ours["seeds"], ours["AP_per_seed"])
                     if seed in theirs_by_seed])
    if not len(gaps):
        raise ValueError(f"no seed trained by both: {ours['seeds']} vs {theirs['seeds']}")
    se = float(gaps.std(ddof=1) / math.sqrt(len(gaps))) if len(gaps) > 1 else None
    return {"gap": float(gaps.mean()), "gap_se": se, "paired_seeds": len(gaps),
            "beats": bool(gaps.mean() > 2 * (se or 0.0))}


def fold_gap(ours: list[float], theirs: list[float]) -> dict[str, Any]:
    """``paired_gap`` over folds instead of seeds: two models' metric on the same disjoint parts of one image set."""
    return paired_gap({"seeds": list(range(len(ours))), "AP_per_seed": ours},
                      {"seeds": list(range(len(theirs))), "AP_per_seed": theirs})

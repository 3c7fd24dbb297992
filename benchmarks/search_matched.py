"""The searched backbone against hand-designed and random ones at one latency (issue 5), in one command;
benchmarks/README.md has the results and what they mean:

    python benchmarks/search_matched.py [--data ../shared/datasets/coco-mini] [--seeds 0 1] [--close-seeds ...]
        [--search-data DIR ...] [--batch-norm sub_batch|frozen|per_batch] [--search-set KEY=VALUE ...]
        [--also-eval DIR] [--train-time 8m] [--train-set KEY=VALUE ...] [--parallel 2]

A ``--target-ms`` search at MobileNetV2-like's latency on ``--matched-device`` (or at ``--matched-ms``); it,
MobileNetV2-like and Lite0 scaled by input size to that latency, the prior-only derivation (the same search with θ
ignored: what θ added) and ``--random`` random ones (the pipeline's, within 5% of the searched one's latency) are
each trained (``edgedet train`` in a child, every ``--seeds``, the searched one and scaled Lite0, or the
``--close-models``, also every ``--close-seeds``) with one short recipe: AP / AP50 on coco-mini val, CPU and wall
minutes of each training, and the searched one's paired AP gap to each hand-designed one (a win must exceed two standard
errors). The models' latencies must be within 5% of the target and every training within the issue's 15 CPU-minutes.
The search runs on ``--search-data`` (default ``--data``; several: their union, θ on 20% of it) with the single-path
supernet's ``--batch-norm``; its CPU minutes and peak memory are reported. With ``--search-set input_sizes=[...]``
the search chooses the input size too, and the prior-only derivation its own (each by the supernet's score); the
random ones are drawn at the searched one's size. ``--init-from-search``: every model starts its training from the
supernet's weights on its path (all are in the searched space), not from ImageNet's alone. ``--also-eval DIR`` scores every trained
model on DIR's val too (coco-mini val2017 person beside people val), with its own paired gaps. The ranking check
(``edgedet.search.ranking``): each model's supernet AP (path fixed, BatchNorm statistics inherited or recalibrated)
on θ's held-apart images, and Kendall τ against the trained AP (``--random 4`` or more: at least 8 architectures).
On a larger dataset, where an epoch alone is past the budget, ``--train-time`` gives every training the same time
budget instead (its cosine ends on time), and ``--parallel 2`` trains two side by side, each pinned to its own core.

``--ranking-of MATCHED_JSON`` checks another supernet's ranking without training anything: the search with this
``--batch-norm`` (and ``--search-set``) at that JSON's latency scores its architectures, Kendall τ against the
trained AP it holds (the issue's three BatchNorm options compared on the same 8 trainings); ``<--out>/ranking.json``.
``--archs-of MATCHED_JSON`` trains that JSON's architectures again under this recipe, with no search (say from
ImageNet's weights where it had ``--init-from-search``), and checks its supernet's scores against these trainings.
``--agreement-seeds 1 2`` trains nothing either: the search at each seed (one derived before θ's departures were
verified is derived again, its earlier pick kept), the input size each chooses with every size's supernet AP and
paired fold gap to the reference's size (Lite0 scaled's), θ's derivation and its fold gap to the prior-only one, and
whether the searches agree; ``<--out>/agreement.json``.

Prints the table and writes ``<--out>/matched.json`` (skipped when it exists: ``--redo``). The search
(``runs/search/bench-matched*/``) and the trainings (``runs/train/bench-matched-*/``) resume when interrupted and are
reused only while their settings are the same.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from _common import (console, eval_child, log_totals, parser_with_common, redo_unless_same,  # benchmarks/
                     run_child, run_part, settings_tag, side_by_side)  # is our folder
from rich.table import Table

from edgedet.devices.builder import get_or_build_profile
from edgedet.devices.latency import LatencyModel, predict_ms
from edgedet.io import atomic_write_json
from edgedet.pipeline.run import BASELINES
from edgedet.pipeline.stages import matched_random_archs
from edgedet.search.config import BATCH_NORMS
from edgedet.search.derive import prior_only_arch, resolution_scaled
from edgedet.search.ranking import SearchedSupernet, rank_agreement, ranking_check
from edgedet.settings import parse_set_items
from edgedet.space import ArchSpec
from edgedet.stats import fold_gap, over_seeds, paired_gap

CPU_MIN_PER_MODEL = 15  # the training budget per model on this machine
MATCHED_LR = 1e-3  # the trainings' AdamW peak learning rate (runs at another --train-lr keep their own folders)
COMPARED = ("mbv2", "lite0_scaled", "prior_only", "theta")  # the searched one's paired gap is taken to each (θ's
# own derivation where the search verified it)


def _train_run(name: str, args: argparse.Namespace, seed: int) -> Path:
    lr_tag = "" if args.train_lr == MATCHED_LR else f"-lr{args.train_lr:g}"
    data_tag = "" if args.data.name == "coco-mini" else f"-{args.data.name}"  # another dataset: its own folders
    time_tag = (f"-{args.train_time}" if args.train_time else "") + settings_tag(args.train_set)
    return Path("runs/train") / f"bench-matched-{name}{data_tag}{lr_tag}{time_tag}{f'-seed{seed}' if seed else ''}"


def _train_child(name: str, arch: ArchSpec, settings: list[str], args: argparse.Namespace, seed: int,
                 cores: set[int] | None = None) -> dict[str, Any]:
    """``edgedet train`` in a child process (its CPU time counted: all of it unless it resumed), with
    ``--train-set`` and ``settings``, then its AP on ``--also-eval``'s val (``also``); the result is kept in the run
    folder."""
    run = _train_run(name, args, seed)
    settings = args.train_set + settings
    redo_unless_same(run, {"arch": str(arch), "imgsz": arch.imgsz, "data": [str(args.data)],  # a list: TrainConfig
                           "classes": args.classes.split(","), "epochs": args.train_epochs, "lr": args.train_lr,
                           "time": args.train_time, "seed": seed, **parse_set_items(settings)})
    done = run / "bench.json"
    if not done.exists():
        usage = run_child(["train", "--arch", str(arch), "--imgsz", str(arch.imgsz), "--data", str(args.data),
                           "--classes", args.classes, "--epochs", str(args.train_epochs), "--eval-every",
                           str(args.train_epochs), "--lr", str(args.train_lr), "--seed", str(seed),
                           *(["--time", args.train_time] if args.train_time else []),
                           *[arg for setting in settings for arg in ("--set", setting)],
                           "--json-out", str(run / "final.json")], run, cores)
        final = json.loads((run / "final.json").read_text())
        atomic_write_json(done, {"arch": str(arch), "AP": final["AP"], "AP50": final["AP50"], **usage})
    result = json.loads(done.read_text()) | {"images_seen": log_totals(run)["images_seen"]}
    return result | ({"also": eval_child(run, args.also_eval, cores)} if args.also_eval else {})


def _train_all(jobs: dict[tuple[str, int], tuple[str, ArchSpec, list[str]]], args: argparse.Namespace
               ) -> dict[tuple[str, int], dict[str, Any]]:
    """Every (model, seed) trained, ``--parallel`` at a time, each pinned to its own share of the cores."""
    return side_by_side({key: partial(_train_child, *job, args, key[1]) for key, job in jobs.items()}, args.parallel)


def _search_tag(args: argparse.Namespace) -> str:
    """What tells this search's folder (and the trainings of what it derived) from the default search's."""
    data = [Path(d).name for d in args.search_data or [args.data]]
    return ("" if data == ["coco-mini"] else "-" + "+".join(data)) + (
        "" if args.batch_norm == "sub_batch" else f"-{args.batch_norm}") + settings_tag(args.search_set)


def _search(args: argparse.Namespace, target: float, tag: str) -> tuple[Path, dict[str, Any]]:
    """The search at ``target`` ms and what it cost (runs with other data, BatchNorm or settings have their own
    folders)."""
    run = Path(f"runs/search/bench-matched{tag}")
    cost = run / "cost.json"
    if not (run / "arch.json").exists():
        atomic_write_json(cost, run_child(_search_command(args, target), run))
    return run, json.loads(cost.read_text()) if cost.exists() else {}


def _search_command(args: argparse.Namespace, target: float) -> list[str]:
    """``edgedet search`` with this benchmark's device, target, data and settings (``run_child`` adds the folder)."""
    data = [str(d) for d in args.search_data or [args.data]]
    settings = [f"batch_norm={args.batch_norm}", *args.search_set]
    return ["search", "--device", args.matched_device, "--target-ms", str(target),
            *[arg for d in data for arg in ("--data", d)], "--classes", args.classes,
            *[arg for setting in settings for arg in ("--set", setting)]]


def _target(args: argparse.Namespace, lut: LatencyModel) -> tuple[float, str]:
    """The matched latency in ms (``--matched-ms``, else MobileNetV2-like's), and the tag of the folders made for it
    (runs at another latency keep their own)."""
    target = round(args.matched_ms or predict_ms(lut, ArchSpec.parse(BASELINES["mbv2"].arch)), 4)
    return target, f"-{target:g}ms" if args.matched_ms else ""


def _read_earlier(path: Path, option: str, args: argparse.Namespace, target: float) -> dict[str, Any]:
    """An earlier matched.json, which must be at this device and latency."""
    earlier = json.loads(path.read_text())
    if (earlier["device"], earlier["target_ms"]) != (args.matched_device, target):
        raise SystemExit(f"{option} {path} is at {earlier['target_ms']} ms on {earlier['device']}; "
                         f"give --matched-device {earlier['device']} --matched-ms {earlier['target_ms']}")
    return earlier


def _archs_in(earlier: dict[str, Any]) -> dict[str, ArchSpec]:
    """The architectures an earlier matched.json trained, by model name."""
    return {row["model"]: ArchSpec.parse(row["arch"]) for row in earlier["rows"]}


def _search_archs(run: Path, lut: LatencyModel, target: float, random: int) -> dict[str, ArchSpec]:
    """The searched architecture, the hand-designed ones scaled to ``target``, the prior-only derivation, θ's own
    derivation where the search verified it (``theta``: what the verification turned down, or kept) and ``random``
    random ones at the searched one's latency."""
    searched = json.loads((run / "arch.json").read_text())
    provenance = searched["provenance"]
    search_out = {"arch": searched["arch"], "devices": provenance["devices"]}
    return {"searched": ArchSpec.parse(searched["arch"]),
            "mbv2": resolution_scaled(ArchSpec.parse(BASELINES["mbv2"].arch), lut, target),
            "lite0_scaled": resolution_scaled(ArchSpec.default("lite0"), lut, target),
            "prior_only": prior_only_arch(run / "arch.json"),  # θ ignored: what θ added
            **({"theta": ArchSpec.parse(provenance["theta_derivation"])} if "theta_derivation" in provenance else {}),
            **{name: ArchSpec.parse(a) for name, a in matched_random_archs(search_out, random, 5.0).items()}}


def _warn_over_target(archs: dict[str, ArchSpec], lut: LatencyModel, target: float) -> None:
    """Say where a hand-designed baseline, scaled to the nearest input size, is predicted over the target: the
    search, held to the target exactly, cannot return it (Lite0@320 is 4.93733 ms; at ``--matched-ms 4.9373`` the
    search must depart from it somewhere; benchmarks/rederive.py derives a finished search at another target)."""
    for name in ("mbv2", "lite0_scaled"):
        if (ms := predict_ms(lut, archs[name])) > target:
            console.print(f"[yellow]warning: {name} ({archs[name].imgsz} px) is predicted at {ms:.5f} ms, over the "
                          f"{target:g} ms target the search must meet; give a --matched-ms above it (rounded up) to "
                          "let the search return it[/yellow]")


def matched(args: argparse.Namespace) -> dict[str, Any]:
    lut = get_or_build_profile(args.matched_device).latency_model()
    target, tag = _target(args, lut)
    if args.archs_of:  # the same architectures under this recipe; the earlier search's scores rank them
        if args.init_from_search:
            raise SystemExit("--archs-of trains an earlier search's architectures without its supernet; "
                             "drop --init-from-search")
        earlier = _read_earlier(args.archs_of, "--archs-of", args, target)
        archs = _archs_in(earlier)
        run, search_cost, search_tag = None, earlier["search_cost"], f"-archs-of-{args.archs_of.stem}"
    else:
        run, search_cost = _search(args, target, tag + _search_tag(args))
        archs, search_tag = _search_archs(run, lut, target, args.random), _search_tag(args)
        _warn_over_target(archs, lut, target)
    inherit = [f"init_from={run}"] if args.init_from_search else []  # every model from the supernet's weights
    order = sorted(archs, key=lambda name: name not in args.close_models)  # seed by seed, the close models first:
    same_as = {name: next(first for first in order if str(archs[first]) == str(archs[name])) for name in order}
    jobs = {(name, seed): (name + tag + ("" if name in ("mbv2", "lite0_scaled") and not inherit else search_tag)
                           + ("-supernet_init" if inherit else ""), archs[name], inherit)  # a compared pair trains
            for seed in args.seeds + args.close_seeds for name in order  # side by side, at the same moment
            if (seed in args.seeds or name in args.close_models)  # (the search's own models keep its tag)
            and same_as[name] == name}  # one architecture under two names (the prior's, kept) trains once
    trained = _train_all(jobs, args)
    rows = []
    for name, arch in archs.items():
        per_seed = {seed: result for (model, seed), result in trained.items() if model == same_as[name]}
        row = {"model": name, "arch": str(arch), "predicted_ms": predict_ms(lut, arch), **over_seeds(per_seed),
               "images_seen": float(np.mean([result["images_seen"] for result in per_seed.values()])),
               "images_seen_per_seed": [result["images_seen"] for result in per_seed.values()]}
        if args.also_eval:
            row["also"] = over_seeds({seed: result | result["also"] for seed, result in per_seed.items()})
        rows.append(row)
    by_name = {row["model"]: row for row in rows}
    randoms = [row["AP"] for row in rows if row["model"].startswith("random")]
    ap, random_median = by_name["searched"]["AP"], float(np.median(randoms)) if randoms else None  # --random 0
    compared = [name for name in COMPARED if name in by_name]
    gaps = {f"{key}_{name}": value for name in compared
            for key, value in paired_gap(by_name["searched"], by_name[name]).items()}
    if args.also_eval:
        gaps |= {f"also_{key}_{name}": value for name in compared
                 for key, value in paired_gap(by_name["searched"]["also"], by_name[name]["also"]).items()}
    trained_ap = {row["model"]: row["AP"] for row in rows if same_as[row["model"]] == row["model"]}  # τ counts
    ranking = (rank_agreement(earlier["ranking"]["scores"], trained_ap) if args.archs_of  # each training once
               else ranking_check(SearchedSupernet.load(run), {name: archs[name] for name in trained_ap}, trained_ap))
    return {"device": args.matched_device, "target_ms": target, "classes": args.classes, "data": args.data.name,
            "also_eval": args.also_eval.name if args.also_eval else None,
            "train_epochs": args.train_epochs, "train_time": args.train_time, "train_lr": args.train_lr,
            "init_from_search": args.init_from_search, "archs_of": str(args.archs_of) if args.archs_of else None,
            "seeds": args.seeds,
            "close_seeds": args.close_seeds, "rows": rows, "search_cost": search_cost, "ranking": ranking,
            **{key: value for key, value in ranking.items() if key.startswith("kendall")},
            "AP": ap, "AP50": by_name["searched"]["AP50"], **gaps,
            "random_median_AP": random_median, "beats_random_median": None if random_median is None else ap > random_median,
            "within_5pct": all(abs(row["predicted_ms"] / target - 1) <= 0.05 for row in rows),
            "max_cpu_min": max(row["cpu_min"] for row in rows),
            "within_cpu_budget": all(row["cpu_min"] <= CPU_MIN_PER_MODEL for row in rows)}


def ranking_only(args: argparse.Namespace) -> dict[str, Any]:
    """This ``--batch-norm``'s search scoring the architectures of ``--ranking-of`` against their trained AP there."""
    target, tag = _target(args, get_or_build_profile(args.matched_device).latency_model())
    earlier = _read_earlier(args.ranking_of, "--ranking-of", args, target)
    run, search_cost = _search(args, target, tag + _search_tag(args))
    archs = _archs_in(earlier)
    trained_ap = {row["model"]: row["AP"] for row in earlier["rows"]}
    ranking = ranking_check(SearchedSupernet.load(run), archs, trained_ap)
    return {"device": args.matched_device, "target_ms": target, "batch_norm": args.batch_norm,
            "trained_ap_from": str(args.ranking_of), "trained_ap": trained_ap,
            "search_cost": search_cost, "ranking": ranking,
            **{key: value for key, value in ranking.items() if key.startswith("kendall")}}


def _seeded(args: argparse.Namespace, seed: int) -> argparse.Namespace:
    """``args`` with the search at ``seed`` (0, the default search's, keeps the default folder)."""
    return argparse.Namespace(**vars(args) | {"search_set": args.search_set + ([f"seed={seed}"] if seed else [])})


def _derived(args: argparse.Namespace, target: float, run: Path) -> dict[str, Any]:
    """A finished search's architecture and provenance, derived again (``--resume`` of a finished search: no
    training) where it was derived before θ's departures were verified (``theta_vs_prior_only``); the earlier
    derivation kept as ``arch-derived-before.json`` and the re-derivation's cost as ``rederive-cost.json`` (None
    where it was never re-derived)."""
    arch, before, cost = run / "arch.json", run / "arch-derived-before.json", run / "rederive-cost.json"
    if "theta_vs_prior_only" not in json.loads(arch.read_text())["provenance"]:
        before.write_text(arch.read_text())
        atomic_write_json(cost, run_child(_search_command(args, target), run))
    earlier = json.loads(before.read_text()) if before.exists() else None
    derived = json.loads(arch.read_text())
    return {"arch": derived["arch"], "provenance": derived["provenance"],
            "rederived": json.loads(cost.read_text()) | {"arch_before": earlier["arch"],
                                                          "input_sizes_before": earlier["provenance"]["input_sizes"]}
            if earlier and cost.exists() else None}


def _to_reference_size(by_size: dict[str, dict[str, Any]], home: int, name: str) -> dict[str, dict[str, Any]]:
    """``name``'s derivation (searched: θ's; prior_only) at each size that fits: its supernet AP and its paired fold
    gap to its own derivation at the reference's size ``home``."""
    home_folds = by_size[str(home)][f"{name}_fold_AP"]
    return {size: {"AP": row[f"{name}_AP"], **{f"{key}_to_reference_size": value for key, value
                                                in fold_gap(row[f"{name}_fold_AP"], home_folds).items()}}
            for size, row in by_size.items() if row}


def agreement(args: argparse.Namespace) -> dict[str, Any]:
    """The search at each ``--agreement-seeds`` (data order, θ's images, Gumbel draws): what each derives, the input
    size it chooses and why (each size's supernet AP and its paired fold gap to the reference's size), and whether
    they agree."""
    if any(setting.startswith("seed=") for setting in args.search_set):
        raise SystemExit("--agreement-seeds sets the search's seed: drop seed= from --search-set")
    lut = get_or_build_profile(args.matched_device).latency_model()
    target, tag = _target(args, lut)
    reference = ArchSpec.default("lite0").ops
    rows = []
    for seed in args.agreement_seeds:
        seeded = _seeded(args, seed)
        run, cost = _search(seeded, target, tag + _search_tag(seeded))
        derived = _derived(seeded, target, run)
        provenance, arch = derived["provenance"], ArchSpec.parse(derived["arch"])
        by_size, home = provenance["input_sizes"], provenance["reference_size"]
        theta = ArchSpec.parse(provenance["theta_derivation"])
        departures = {layer: {op: provenance["theta_probs"][layer][op], ref: provenance["theta_probs"][layer][ref]}
                      for layer, (op, ref) in enumerate(zip(theta.ops, reference)) if op != ref}  # θ's odds of each
        rows.append({"seed": seed, "arch": str(arch), "imgsz": arch.imgsz, "reference_size": home,
                     "departures": sum(op != ref for op, ref in zip(arch.ops, reference)),
                     "predicted_ms": predict_ms(lut, arch), "prior_only": provenance["prior_only"],
                     "theta_derivation": str(theta), "theta_departure_probs": departures,
                     "theta_vs_prior_only": provenance["theta_vs_prior_only"],
                     "sizes": _to_reference_size(by_size, home, "searched"),
                     "prior_only_sizes": _to_reference_size(by_size, home, "prior_only"),
                     "input_sizes": by_size, "search_cost": cost,
                     "rederived": derived["rederived"]})
    ops = [ArchSpec.parse(row["arch"]).ops for row in rows]
    return {"device": args.matched_device, "target_ms": target, "rows": rows,
            "same_size": len({row["imgsz"] for row in rows}) == 1, "same_arch": len({row["arch"] for row in rows}) == 1,
            "max_ops_differing": max((sum(a != b for a, b in zip(one, other)) for i, one in enumerate(ops)
                                      for other in ops[i + 1:]), default=0)}


def show_agreement(part: str, result: dict[str, Any]) -> None:
    sizes = sorted({size for row in result["rows"] for size in row["sizes"]}, key=int)
    table = Table("seed", "chosen", "Lite0's size", *(f"θ's at {size} px: AP (gap ± s.e.)" for size in sizes),
                  "θ's over the prior's", "departures", "ms", "architecture",
                  title=f"Searches at {result['target_ms']:.2f} ms on {result['device']}, one per seed")
    for row in result["rows"]:
        cells = [f"{cell['AP']:.2f} ({cell['gap_to_reference_size']:+.2f} ± {cell['gap_se_to_reference_size']:.2f})"
                 if (cell := row["sizes"].get(size)) else "-" for size in sizes]
        verdict = row["theta_vs_prior_only"]
        table.add_row(str(row["seed"]), str(row["imgsz"]), str(row["reference_size"]), *cells,
                      f"{verdict['gap']:+.2f} ± {verdict['gap_se']:.2f} ({'kept' if verdict['beats'] else 'prior'})",
                      str(row["departures"]), f"{row['predicted_ms']:.3f}", row["arch"])
    table.caption = (f"same input size: {result['same_size']}; same architecture: {result['same_arch']}; "
                     f"at most {result['max_ops_differing']} layers differ between two searches; θ's own "
                     f"derivations: {' vs '.join(row['theta_derivation'] for row in result['rows'])}")
    console.print(table)


def show_ranking(part: str, result: dict[str, Any]) -> None:
    scores = result["ranking"]["scores"]
    table = Table("model", "trained AP", *(f"supernet AP ({scoring})" for scoring in scores),
                  title=f"Ranking check of the {result['batch_norm']} supernet at {result['target_ms']:.2f} ms on "
                  f"{result['device']} (trained AP from {result['trained_ap_from']})")
    for model, ap in result["trained_ap"].items():
        table.add_row(model, f"{ap:.1f}", *(f"{by_model[model]:.2f}" for by_model in scores.values()))
    table.caption = "; ".join(_ranking_notes(result))
    console.print(table)


def _ranking_notes(result: dict[str, Any]) -> list[str]:
    """Kendall τ per scoring and the search's cost, as the tables' captions say them."""
    notes = [f"Kendall τ {key.removeprefix('kendall_tau_')} {value:+.2f}" for key, value in result.items()
             if key.startswith("kendall_tau")]
    cost = result.get("search_cost") or {}
    if cost:
        notes.append(f"search {cost['cpu_min']:.0f} CPU-min, {cost['wall_min']:.0f} wall min, "
                     f"{cost['peak_rss_gb']:.1f} GB peak")
    return notes


def _gap_text(result: dict[str, Any], name: str) -> str:
    se = result[f"gap_se_{name}"]
    noise = "" if se is None else f" ± {se:.2f} (s.e., {result[f'paired_seeds_{name}']} paired seeds)"
    return f"searched − {name}: {result[f'gap_{name}']:+.2f} AP{noise}: {'a' if result[f'beats_{name}'] else 'no'} win"


def show(part: str, result: dict[str, Any]) -> None:
    also = result.get("also_eval")
    ranking = result.get("ranking", {"scores": {}})
    table = Table("model", f"{result['device']} ms", "AP (per seed)", "AP50", *([f"{also} AP"] if also else []),
                  *(f"supernet AP ({scoring})" for scoring in ranking["scores"]), "images seen", "CPU min",
                  "wall min", "architecture", title=f"At {result['target_ms']:.2f} ms on {result['device']}: "
                  f"{result.get('data', 'coco-mini')} {result['classes']}, "
                  f"{result.get('train_time') or str(result['train_epochs']) + ' epochs'} each, "
                  f"mean of seeds {result['seeds']}")
    for row in result["rows"]:
        per_seed = ", ".join(f"{ap:.1f}" for ap in row["AP_per_seed"])
        table.add_row(row["model"], f"{row['predicted_ms']:.2f}", f"{row['AP']:.1f} ({per_seed})",
                      f"{row['AP50']:.1f}", *([f"{row['also']['AP']:.1f}"] if also else []),
                      *(f"{scores[row['model']]:.1f}" if row["model"] in scores else "(twin)"
                        for scores in ranking["scores"].values()),
                      f"{row['images_seen']:.0f}" if "images_seen" in row else "-",
                      f"{row['cpu_min']:.1f}", f"{row['wall_min']:.1f}", row["arch"])
    notes = [_gap_text(result, name) for name in COMPARED if f"gap_{name}" in result] + _ranking_notes(result)
    table.caption = "; ".join(notes)
    console.print(table)


def main() -> None:
    parser = parser_with_common(__doc__)
    add = parser.add_argument
    add("--matched-device", default="jetson", help="the device profile whose latency the models are matched at")
    add("--matched-ms", type=float, default=None, help="latency on that device (default: MobileNetV2-like's own); "
        "the hand-designed backbones are scaled by input size to it (with --out for its JSON)")
    add("--classes", default="person", help="classes of the search and the trainings")
    add("--train-epochs", type=int, default=6,
        help=f"epochs of every training (≤ {CPU_MIN_PER_MODEL} CPU-minutes each here)")
    add("--train-lr", type=float, default=MATCHED_LR, help="peak learning rate of every training")
    add("--random", type=int, default=3, help="random architectures at the searched one's latency")
    add("--seeds", type=int, nargs="+", default=[0, 1], help="every model trained with each; AP is the mean")
    add("--close-seeds", type=int, nargs="*", default=[], help="more seeds for the --close-models only (the close "
        "pair: the searched backbone and Lite0 scaled); a win must exceed two standard errors of the paired gap")
    add("--close-models", nargs="+", default=["searched", "lite0_scaled"], choices=["searched", *COMPARED],
        help="the models trained every --close-seeds too (add prior_only for a noise estimate of what θ added)")
    add("--search-data", type=Path, nargs="*", default=None, help="the search's data (default --data; several: "
        "their union, e.g. people and coco-mini, θ on 20%% of it)")
    add("--batch-norm", default="sub_batch", choices=BATCH_NORMS, help="the single-path supernet's BatchNorm")
    add("--train-time", default=None, help="every training's time budget (edgedet train --time, e.g. 7m): its "
        "cosine ends on time, whatever --train-epochs says")
    add("--train-set", nargs="*", default=[], metavar="KEY=VALUE", help="the trainings' other settings (edgedet "
        "train --set), e.g. warmup_epochs=0.1 under a short --train-time")
    add("--parallel", type=int, default=1, help="trainings side by side, each pinned to its own share of the cores")
    add("--search-set", nargs="*", default=[], metavar="KEY=VALUE", help="the search's other settings (edgedet "
        "search --set), e.g. epochs=3 warmup_epochs=1, or input_sizes=[256,288] to let the search choose the input "
        "size; a search with others has its own folder")
    add("--init-from-search", action="store_true", help="every model starts from the search's supernet weights on "
        "its path (edgedet train --init-from), not from ImageNet's alone: the search's training shared by all")
    add("--also-eval", type=Path, default=None, help="another dataset whose val scores every trained model too "
        "(e.g. ../shared/datasets/coco-mini beside --data ../shared/datasets/people)")
    add("--ranking-of", type=Path, default=None, metavar="MATCHED_JSON", help="no trainings: this --batch-norm's "
        "search scores the architectures of an earlier matched.json, Kendall τ against their trained AP there "
        "(writes <--out>/ranking.json)")
    add("--archs-of", type=Path, default=None, metavar="MATCHED_JSON", help="no search: train the architectures of "
        "an earlier matched.json (its searched, hand-designed, prior-only and random ones; --random ignored) under "
        "this recipe, e.g. from ImageNet's weights where it had --init-from-search; Kendall τ of its supernet's "
        "scores against these trainings")
    add("--agreement-seeds", type=int, nargs="+", default=None, metavar="SEED", help="no trainings: the search "
        "at each seed; do they choose the same input size and architecture? (writes <--out>/agreement.json)")
    args = parser.parse_args()
    if args.agreement_seeds:
        run_part("agreement", args, agreement, show_agreement)
    elif args.ranking_of:
        run_part("ranking", args, ranking_only, show_ranking)
    else:
        run_part("matched", args, matched, show)


if __name__ == "__main__":
    main()

"""``report.md`` of a pipeline run, with its PNG plots, rebuilt from the manifest alone (``edgedet report RUN``)."""

from __future__ import annotations

import csv
import datetime
import json
from pathlib import Path
from typing import Any

from edgedet.errors import UsageError
from edgedet.io import atomic_write_text

PLOTS = "plots"


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def plot_accuracy_vs_latency(context: dict[str, Any], path: Path) -> Path:
    """AP against latency: each targeted device (predicted) and host (measured, FP32 and INT8)."""
    plt = _plt()
    models, bench = context["evaluate"]["models"], context["benchmark"]
    devices = list(bench["predicted_ms"])
    fig, axes = plt.subplots(1, len(devices) + 1, figsize=(4.2 * (len(devices) + 1), 3.6), squeeze=False)
    for ax, device in zip(axes[0], devices):
        for key, ms in bench["predicted_ms"][device].items():
            ax.scatter(ms, models[f"{key} fp32"]["AP"], s=60, marker="*" if key == "searched" else "o")
            ax.annotate(key, (ms, models[f"{key} fp32"]["AP"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax.set(title=f"{device} (predicted backbone)", xlabel="ms", ylabel="AP (val)")
    ax = axes[0][-1]
    for key, row in bench["host"].items():
        ax.scatter(row["median_ms"], models[key]["AP"], s=60, marker="*" if key.startswith("searched") else "o")
        ax.annotate(key, (row["median_ms"], models[key]["AP"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    ax.set(title="host (measured, ONNX Runtime)", xlabel="ms", ylabel="AP (val)")
    return _save(fig, path)


def plot_search(search_log: Path, path: Path) -> Path:
    """Expected latency per device and the loss terms over the search's epochs."""
    plt = _plt()
    rows = _rows(search_log)
    epochs = [int(r["epoch"]) for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key in (k for k in rows[0] if k.startswith("ms_")):
        left.plot(epochs, [float(r[key]) for r in rows], marker="o", label=key[3:])
    left.set(title="expected latency under θ", xlabel="epoch", ylabel="ms")
    left.legend(fontsize=8)
    for key in ("loss_det_w", "loss"):
        values = [(e, float(r[key])) for e, r in zip(epochs, rows) if r.get(key)]
        if values:
            right.plot(*zip(*values), marker="o", label={"loss_det_w": "detection loss (weights)",
                                                         "loss": "search loss (θ)"}[key])
    right.set(title="loss", xlabel="epoch")
    right.legend(fontsize=8)
    return _save(fig, path)


def plot_host_check(check: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.4, 4))
    predicted, measured = check["predicted_ms"], check["measured_ms"]
    for key in predicted:
        ax.scatter(predicted[key], measured[key], marker="*" if key == "searched" else "o", s=50)
        ax.annotate(key, (predicted[key], measured[key]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    low, high = min(predicted.values()) * 0.9, max(predicted.values()) * 1.1
    ax.plot([low, high], [low, high], "k--", linewidth=0.8)
    ax.set(title="host: LUT vs measured backbone", xlabel="predicted ms", ylabel="measured ms")
    return _save(fig, path)


def plot_quantization(context: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    models, host = context["evaluate"]["models"], context["benchmark"]["host"]
    keys = ["searched fp32", "searched int8"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(7, 3.2))
    left.bar(["FP32", "INT8"], [models[k]["AP"] for k in keys], color=["#4c72b0", "#dd8452"])
    left.set(title="AP (val)")
    right.bar(["FP32", "INT8"], [host[k]["median_ms"] for k in keys], color=["#4c72b0", "#dd8452"])
    right.set(title="host latency (median ms)")
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def _fmt(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_report(folder: Path, context: dict[str, Any], config: Any) -> Path:
    """``folder/report.md`` and ``folder/plots/*.png`` from the stages' outputs."""
    plots = folder / PLOTS
    models, bench, search = context["evaluate"]["models"], context["benchmark"], context["search"]
    figures = {"accuracy vs latency": plot_accuracy_vs_latency(context, plots / "accuracy_vs_latency.png"),
               "search": plot_search(Path(search["log"]), plots / "search.png"),
               "FP32 vs INT8": plot_quantization(context, plots / "fp32_vs_int8.png")}
    check = bench["host_check"]
    if "skipped" not in check:
        figures["host: predicted vs measured"] = plot_host_check(check, plots / "host_check.png")
    devices = list(bench["predicted_ms"])
    lines = [f"# edgedet pipeline: {folder.name}", "",
             f"{datetime.date.today().isoformat()} · devices {', '.join(devices)} · data `{config.data}`"
             f"{' · classes ' + ', '.join(config.classes) if config.classes else ''} · preset {config.preset}", "",
             "## Result", "",
             "| model | AP | AP50 | host median ms | host e2e ms | size MB | "
             + " | ".join(f"{d} predicted ms" for d in devices) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(devices)]
    for key, row in models.items():
        arch_key = key.rsplit(" ", 1)[0]
        host = bench["host"][key]
        predicted = [_fmt(bench["predicted_ms"][d].get(arch_key), 2) for d in devices]
        lines.append(f"| {key} | {_fmt(row['AP'])} | {_fmt(row['AP50'])} | {_fmt(host['median_ms'])} | "
                     f"{_fmt(host['e2e_ms'])} | {host['size_mb']:.2f} | " + " | ".join(predicted) + " |")
    lines += ["", f"Searched architecture: `{search['arch']}`", "",
              "| device | precision | predicted ms | target ms | reference (Lite0) ms | fastest ms |", "|---|---|---|---|---|---|"]
    for row in search["devices"]:
        lines.append(f"| {row['device']} | {row['precision']} | {row['predicted_ms']:.3f} | "
                     f"{_fmt(row['target_ms'], 3)} | {row['reference_ms']:.3f} | {row['fastest_ms']:.3f} |")
    quant = context["quantize"]
    lines += ["", "## Quantization", "",
              f"INT8 (QDQ, U8/S8 per-channel) AP {_fmt(quant['int8_AP'], 2)} vs FP32 {_fmt(quant['fp32_AP'], 2)} on "
              f"val; kept in FP32: {', '.join(quant['kept_fp32']) or 'none'} (chosen on train images apart from "
              "calibration)."]
    if quant.get("within_budget") is False:
        lines += ["", f"**Warning: the INT8 model misses its AP budget** (it loses {_fmt(quant['guard_AP_drop'], 2)} "
                      "AP on the guard's images even with nodes kept in FP32); prefer the FP32 model or requantize."]
    if "skipped" in check:
        lines += ["", f"Host LUT check: {check['skipped']}."]
    lines += ["", "## Plots", ""] + [f"![{title}]({PLOTS}/{p.name})" for title, p in figures.items()]
    probs = Path(search["probs_png"]).resolve().relative_to(folder.resolve())
    lines += ["", f"![search: choice probabilities]({probs})",
              "", "## Artefacts", "",
              f"- architecture: `{search['arch_json']}`", f"- checkpoint: `{context['train']['checkpoint']}`",
              f"- ONNX FP32: `{context['export']['onnx']}` (+ sidecar `{context['export']['sidecar']}`)",
              f"- ONNX INT8: `{quant['onnx']}`", *_deploy_lines(quant.get("deploy")), "",
              f"Next: `edgedet camera {quant['onnx']} --source 0`", ""]
    return atomic_write_text(folder / "report.md", "\n".join(lines))


def _deploy_lines(deploy: dict[str, Any] | None) -> list[str]:
    """Which file goes to the device and which serves this host (runs made before the split have neither)."""
    if not deploy:
        return []
    device, host = deploy["device"], deploy["host"]
    return ["", "## Deploy", "",
            f"- for **{device['id']}** ({device['precision']}, {device['runtime'] or 'ONNX Runtime'}): "
            f"`{device['file']}`",
            f"- for **this host** (ONNX Runtime, CPU, {host['precision']}): `{host['file']}`"]


def rebuild_report(folder: Path) -> Path:
    """``edgedet report RUN``: the report again from a finished run's manifest."""
    from edgedet.pipeline.run import MANIFEST, PipelineConfig

    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise UsageError(f"{folder}: no {MANIFEST}; give a folder written by `edgedet pipeline`")
    manifest = json.loads(manifest_path.read_text())
    stages = manifest.get("stages", {})
    missing = [s for s in ("search", "train", "baselines", "export", "quantize", "evaluate", "benchmark")
               if stages.get(s, {}).get("status") != "done"]
    if missing:
        raise UsageError(f"{folder}: stage '{missing[0]}' has not finished; run the pipeline again to complete it")
    context = {name: stage["outputs"] for name, stage in stages.items() if "outputs" in stage}
    return write_report(folder, context, PipelineConfig(**manifest["config"]))

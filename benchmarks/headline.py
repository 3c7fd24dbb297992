"""The README's headline table: the searched detector against the baselines and the peers on coco-mini.

    python benchmarks/headline.py [--device jetson] [--classes person] [--epochs 12] [--random 3] [--name headline]

Runs ``edgedet pipeline`` on ``../shared/datasets/coco-mini`` (train2017 -> val2017; ``person`` by default: over
80 classes 367 images leave a 12-epoch model near AP 1, where the differences between models are noise) with
``--target-ms`` set to Lite0's own predicted latency on the device, so that the searched backbone, Lite0's choices
and ``--random`` random architectures (within 5% of the searched one's latency) meet at one latency. Every model
(searched, Lite0, Lite0 at the input size nearest the searched latency, MobileNetV2-like, torchvision's SSDlite head
on the Lite0 backbone, the random ones) is trained with the same short recipe (``--epochs`` at 320, the scaled Lite0
at its own size; the default 12 take 11-18 minutes, about twice as many CPU-minutes, per model on 2 cores;
``benchmarks/search_matched.py`` compares within 15 CPU-minutes), exported, quantized and evaluated through
ONNX Runtime; the peers (FastestDet, NanoDet-m) are evaluated and timed beside them.
Re-running resumes the pipeline where it stopped.

Prints the table and writes runs/bench/headline.json and runs/bench/headline.md (the table as markdown).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from edgedet.devices.latency import predict_ms
from edgedet.devices.profile import get_profile
from edgedet.io import atomic_write_json, atomic_write_text
from edgedet.space import ArchSpec

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def table_rows(out: dict[str, Any], device: str) -> list[dict[str, Any]]:
    """One row per model: AP, AP50 (FP32), host median ms FP32 / INT8, predicted backbone ms on ``device``."""
    models, host = out["evaluate"]["models"], out["benchmark"]["host"]
    predicted = out["benchmark"]["predicted_ms"][device]
    names = ["searched", *out["baselines"]]
    rows = [{"model": name, "AP": models[f"{name} fp32"]["AP"], "AP50": models[f"{name} fp32"]["AP50"],
             "int8_AP": models.get(f"{name} int8", {}).get("AP"), "fp32_ms": host[f"{name} fp32"]["median_ms"],
             "int8_ms": host.get(f"{name} int8", {}).get("median_ms"), "predicted_ms": predicted.get(name),
             "arch": out["benchmark"]["archs"].get(name)} for name in names]
    rows += [{"model": key, "AP": row["AP"], "AP50": row["AP50"], "int8_AP": None,
              "fp32_ms": host[key]["median_ms"], "int8_ms": None, "predicted_ms": None, "arch": None}
             for key, row in models.items() if key.endswith("(peer)")]
    return rows


def markdown(rows: list[dict[str, Any]], device: str) -> str:
    def fmt(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [f"| model | AP | AP50 | INT8 AP | host FP32 ms | host INT8 ms | {device} predicted backbone ms |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {fmt(r['AP'])} | {fmt(r['AP50'])} | {fmt(r['int8_AP'])} | {fmt(r['fp32_ms'])} | "
              f"{fmt(r['int8_ms'])} | {fmt(r['predicted_ms'], 2)} |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="jetson")
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "coco-mini")
    parser.add_argument("--peers", type=Path, default=SHARED / "peers")
    parser.add_argument("--classes", default="person", help="comma-separated COCO classes; 'all' for all 80")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs of every model (same recipe)")
    parser.add_argument("--random", type=int, default=3, help="random architectures at the searched latency")
    parser.add_argument("--target-ms", type=float, help="default: Lite0's predicted latency on --device")
    parser.add_argument("--name", default="headline")
    parser.add_argument("--json-out", type=Path, default=Path("runs/bench/headline.json"))
    args = parser.parse_args()
    console = Console(width=200)

    target = args.target_ms or predict_ms(get_profile(args.device).latency_model(), ArchSpec.default("lite0", 320))
    command = [sys.executable, "-m", "edgedet", "pipeline", "--device", args.device, "--target-ms", f"{target:.4f}",
               "--data", str(args.data), "--peers", str(args.peers), "--name", args.name,
               "--set", f"train.epochs={args.epochs}", "--set", f"baselines.random={args.random}",
               "--set", "baselines.archs=[lite0,lite0-scaled,mbv2,ssdlite]"]
    if args.classes != "all":
        command += ["--classes", args.classes]
    console.print("running: edgedet " + " ".join(command[3:]), markup=False)
    subprocess.run(command, check=True)

    manifest = json.loads((Path("runs/pipeline") / args.name / "manifest.json").read_text())
    out = {name: stage["outputs"] for name, stage in manifest["stages"].items()}
    rows = table_rows(out, args.device)
    table = markdown(rows, args.device)
    console.print(table)
    by_name = {r["model"]: r for r in rows}
    randoms = [r["AP"] for name, r in by_name.items() if name.startswith("random")]
    searched = by_name["searched"]
    summary = {"target_ms": target, "classes": args.classes, "epochs": args.epochs,
               "AP": searched["AP"], "AP50": searched["AP50"],
               "median_ms": searched["fp32_ms"], "int8_median_ms": searched["int8_ms"],
               "random_median_AP": statistics.median(randoms) if randoms else None,
               "beats_lite0": searched["AP"] > by_name["lite0"]["AP"],
               "beats_lite0_scaled": searched["AP"] > by_name["lite0-scaled"]["AP"],
               "beats_mbv2": searched["AP"] > by_name["mbv2"]["AP"],
               "beats_random_median": bool(randoms) and searched["AP"] > statistics.median(randoms),
               "total_stage_s": manifest["total_seconds"]}
    console.print("  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()))
    atomic_write_json(args.json_out, summary | {f"{r['model']}.{k}": v for r in rows for k, v in r.items()
                                                if k != "model"})
    atomic_write_text(args.json_out.with_suffix(".md"), table)
    console.print(f"wrote {args.json_out} and {args.json_out.with_suffix('.md')}; report: "
                  f"runs/pipeline/{args.name}/report.md")


if __name__ == "__main__":
    main()

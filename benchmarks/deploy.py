"""What deployment costs and buys: torch checkpoint vs ONNX FP32 vs ONNX INT8, beside the peers, in one run.

Exports and quantizes (with the accuracy guard) a trained checkpoint, evaluates every model on the same val images
with the same evaluation loop (peers restricted to the checkpoint's classes), and times them in ONNX Runtime at
each thread count in interleaved bursts (torch timed right after, in its own loop).

    python benchmarks/deploy.py --checkpoint runs/train/person/best.pt [--data ../shared/datasets/coco-mini]
        [--threads 1 2] [--runs 100] [--calib-images 200]

Prints a table and writes runs/bench/deploy.json (or --json-out); models go to runs/bench/deploy/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from edgedet.data.annotations import find_split
from edgedet.deploy import quantize_model
from edgedet.evaluate.images import evaluate_predictor, load_predictor, split_images
from edgedet.export.onnx_export import export_checkpoint
from edgedet.io import atomic_write_json
from edgedet.runtime.benchmark import benchmark_models, read_images
from edgedet.runtime.peers import load_peers
from edgedet.runtime.preprocess import letterbox
from edgedet.train.checkpoint import load_detector

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def torch_latency(checkpoint: Path, image: np.ndarray, threads: int, runs: int) -> dict[str, float]:
    """Network-only latency of the checkpoint in torch (eval, no grad, batch 1), median and p90 in ms."""
    model, _ = load_detector(checkpoint)
    tensor = torch.from_numpy(letterbox(image, model.arch.imgsz)[0])
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    times = []
    with torch.inference_mode():
        for index in range(runs + 5):
            start = time.perf_counter()
            model.raw(tensor)
            if index >= 5:
                times.append((time.perf_counter() - start) * 1e3)
    torch.set_num_threads(previous)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "coco-mini")
    parser.add_argument("--peers", type=Path, default=SHARED / "peers")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--calib-images", type=int, default=200)
    parser.add_argument("--max-ap-drop", type=float, default=1.0)
    parser.add_argument("--out-dir", type=Path, default=Path("runs/bench/deploy"))
    parser.add_argument("--json-out", type=Path, default=Path("runs/bench/deploy.json"))
    args = parser.parse_args()
    console = Console(width=200)

    fp32, int8 = args.out_dir / "model.onnx", args.out_dir / "model.int8.onnx"
    export_checkpoint(args.checkpoint, fp32)
    guard = quantize_model(fp32, args.data, int8, calib_images=args.calib_images, max_ap_drop=args.max_ap_drop)
    annotations, images = find_split(args.data, "val")
    fp32_predictor = load_predictor(fp32)  # (predictor, class names)
    class_names = fp32_predictor[1]
    peers = {f"{name} (peer)": found for name, found in load_peers(args.peers, annotations, class_names).items()}
    predictors = {"torch checkpoint": load_predictor(args.checkpoint), "ONNX FP32": fp32_predictor,
                  "ONNX INT8": load_predictor(int8), **{key: (peer, peer.class_names) for key, (peer, _) in peers.items()}}
    rows: dict[str, dict] = {"torch checkpoint": {"path": args.checkpoint}, "ONNX FP32": {"path": fp32},
                             "ONNX INT8": {"path": int8}, **{key: {"path": path} for key, (_, path) in peers.items()}}
    for key, (predict, predict_names) in predictors.items():
        report, _ = evaluate_predictor(predict, annotations, images, predict_names)
        rows[key] |= {"AP": report.metrics["AP"], "AP50": report.metrics["AP50"],
                      "size_mb": Path(rows[key]["path"]).stat().st_size / 2**20}
    frames = read_images(split_images(args.data, "val"), 20)
    onnx_keys = ["ONNX FP32", "ONNX INT8", *peers]
    for threads in args.threads:
        timed = benchmark_models([rows[k]["path"] for k in onnx_keys], threads=threads, runs=args.runs,
                                 images=frames)
        for key, row in zip(onnx_keys, timed):
            rows[key] |= {f"t{threads}_median_ms": row.median_ms, f"t{threads}_p90_ms": row.p90_ms,
                          f"t{threads}_e2e_ms": row.end_to_end_ms}
        latency = torch_latency(args.checkpoint, frames[0], threads, args.runs)
        rows["torch checkpoint"] |= {f"t{threads}_median_ms": latency["median_ms"],
                                     f"t{threads}_p90_ms": latency["p90_ms"]}

    subset = "all 80 classes" if len(class_names) == 80 else ", ".join(class_names)
    table = Table("model", "AP", "AP50", *(f"{t} thr median / p90 ms" for t in args.threads),
                  *(f"{t} thr e2e ms" for t in args.threads), "size MB",
                  title=f"coco-mini val ({subset}), batch 1, ONNX Runtime CPU")
    for key, row in rows.items():
        e2e = [row.get(f"t{t}_e2e_ms") for t in args.threads]
        table.add_row(key, f"{row['AP']:.1f}", f"{row['AP50']:.1f}",
                      *(f"{row[f't{t}_median_ms']:.1f} / {row[f't{t}_p90_ms']:.1f}" for t in args.threads),
                      *("-" if v is None else f"{v:.1f}" for v in e2e), f"{row['size_mb']:.2f}")
    console.print(table)
    summary = {"AP_drop": rows["ONNX FP32"]["AP"] - rows["ONNX INT8"]["AP"], "kept_fp32": len(guard.kept_fp32),
               **{f"int8_speedup_t{t}": rows["ONNX FP32"][f"t{t}_median_ms"] / rows["ONNX INT8"][f"t{t}_median_ms"]
                  for t in args.threads}}
    console.print("  ".join(f"{k} {v:.2f}" for k, v in summary.items()))
    flat = {f"{key}.{metric}": value for key, row in rows.items() for metric, value in row.items() if metric != "path"}
    atomic_write_json(args.json_out, summary | flat | {"classes": subset, "checkpoint": str(args.checkpoint)})
    console.print(f"wrote {args.json_out}")


if __name__ == "__main__":
    cv2.setNumThreads(1)
    main()

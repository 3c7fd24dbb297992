"""LUT accuracy on this machine: build fresh FP32 and INT8 LUTs, then compare predicted vs measured latency of
random whole backbones; also how well MACs alone rank the same architectures.

    python benchmarks/lut_accuracy.py [--space lite0] [--imgsz 320] [--samples 50] [--threads 1]

Prints a table and writes runs/bench/lut_accuracy.json (or --json-out).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgedet.devices.builder import BuildSettings, build_lut
from edgedet.devices.check import check_profile, rows_json, summarize
from edgedet.io import atomic_write_json
from edgedet.space import get_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="lite0")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--json-out", type=Path, default=Path("runs/bench/lut_accuracy.json"))
    args = parser.parse_args()

    results = {}
    for precision in args.precisions.split(","):
        start = time.perf_counter()
        settings = BuildSettings("bench", get_space(args.space), args.imgsz, precision, args.threads)
        profile = build_lut(settings, Path("runs/bench/lut_profile"))
        built = time.perf_counter() - start
        rows, speed = check_profile(profile, samples=args.samples, precision=precision)
        results[precision] = summarize(rows, speed) | {"build_seconds": built, "rows": rows_json(rows)}

    table = Table("precision", "samples", "within ±10%", "Spearman (LUT)", "Spearman (MACs)", "mean |err| %",
                  "max |err| %", "median ms", "LUT build s",
                  title=f"{args.space}@{args.imgsz}, {args.threads} thread(s)")
    for precision, r in results.items():
        table.add_row(precision, str(r["samples"]), f"{r['within_10pct']:.0%}", f"{r['spearman']:.3f}",
                      f"{r['flops_spearman']:.3f}", f"{r['mean_abs_pct_error']:.1f}", f"{r['max_abs_pct_error']:.1f}",
                      f"{r['median_measured_ms']:.2f}", f"{r['build_seconds']:.0f}")
    Console(width=160).print(table)
    flat = {f"{p}_{k}": v for p, r in results.items() for k, v in r.items() if k != "rows"}
    atomic_write_json(args.json_out, flat | {"space": args.space, "imgsz": args.imgsz, "threads": args.threads,
                                             "details": results})
    print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()

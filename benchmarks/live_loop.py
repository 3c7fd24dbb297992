"""How close the live loop comes to the model's own speed: headless on a real video, against the benchmark of the
same model (network + letterbox + decode/NMS) measured in the same run.

    python benchmarks/live_loop.py --model runs/bench/deploy/model.int8.onnx
        [--video ../shared/video/vtest_480x360.mp4] [--threads 2] [--rounds 3] [--frames 200]

Rounds alternate the two measurements (benchmark burst, then the loop over ``--frames`` frames), so drift hits
both alike; efficiency = loop FPS / (1000 / benchmark end-to-end ms), median over rounds (goal >= 0.9). The first
loop then runs once more, untimed, to save the annotated video. Prints a table and writes runs/bench/live_loop.json (or --json-out).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from edgedet.io import atomic_write_json
from edgedet.runtime.benchmark import benchmark_models
from edgedet.runtime.camera import run_loop
from edgedet.runtime.onnx_detector import OnnxDetector

SHARED = Path(__file__).resolve().parents[2] / "shared"


def video_frames(path: Path, count: int) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path)), []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--video", type=Path, default=SHARED / "video" / "vtest_480x360.mp4")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--conf", type=float, default=0.35, help="score threshold, for the loop and the benchmark "
                        "alike (the camera command's default)")
    parser.add_argument("--save", type=Path, default=Path("runs/bench/live_loop.mp4"))
    parser.add_argument("--json-out", type=Path, default=Path("runs/bench/live_loop.json"))
    args = parser.parse_args()

    frames = video_frames(args.video, 20)
    detector = OnnxDetector(args.model, threads=args.threads, conf=args.conf, iou=0.5)
    rounds = []
    for _ in range(args.rounds):
        bench = benchmark_models([args.model], threads=args.threads, runs=args.runs, images=frames, conf=args.conf)[0]
        stats = run_loop(detector, str(args.video), show=False, max_frames=args.frames)
        summary = stats.summary()
        rounds.append(summary | {"benchmark_e2e_ms": bench.end_to_end_ms, "benchmark_median_ms": bench.median_ms,
                                 "efficiency": summary["fps"] / (1000 / bench.end_to_end_ms)})
    keys = ("fps", "e2e_p50_ms", "e2e_p95_ms", "inference_p50_ms", "inference_p95_ms", "benchmark_e2e_ms",
            "efficiency")
    table = Table("round", "processed", "dropped", *keys,
                  title=f"live loop, headless, {args.video.name}, {args.threads} threads: {args.model}")
    for index, row in enumerate(rounds):
        table.add_row(str(index + 1), str(row["processed"]), str(row["dropped"]), *(f"{row[k]:.2f}" for k in keys))
    medians = {key: float(np.median([row[key] for row in rounds])) for key in keys}
    table.add_row("median", "", "", *(f"{medians[k]:.2f}" for k in keys))
    Console(width=200).print(table)
    run_loop(detector, str(args.video), show=False, save=args.save)  # the annotated video, not timed
    saved = cv2.VideoCapture(str(args.save))
    medians |= {"saved_frames": int(saved.get(cv2.CAP_PROP_FRAME_COUNT)), "saved_video": str(args.save),
                "frames_per_round": args.frames, "rounds": args.rounds, "threads": args.threads,
                "model": str(args.model)}
    atomic_write_json(args.json_out, medians)
    print(f"wrote {args.json_out} and {args.save} ({medians['saved_frames']} frames)")


if __name__ == "__main__":
    main()

"""At which input size should a dense teacher see a student's training view? (issue 23; `edgedet train --distill
T.onnx --set distill_scale=N`), in one command; benchmarks/README.md has the results:

    python benchmarks/teacher_scale.py [--data ../shared/datasets/people] [--classes person] [--images 400]
        [--student-sizes 160 320] [--scales 1 2] [--teacher ../shared/peers/yolox-nano/yolox_nano.onnx]

For each student input size S and scale N: the teacher's AP / AP50 (and by object size) on ``--data``'s val images
shrunk to S px, the teacher run at S x N px, as distillation shows it each training view. The people set keeps this
choice off coco-mini val2017, where the students are judged. Prints the table and writes
``<--out>/teacher-scale-<data>-<classes>.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from _common import console, on_shrunk_images, parser_with_common, run_part  # this folder's
from rich.table import Table

from edgedet.data.annotations import find_split
from edgedet.evaluate.images import evaluate_predictor
from edgedet.runtime.peers import load_teacher

METRICS = ("AP", "AP50", "APs", "APm", "APl")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    classes = args.classes.split(",") if args.classes else None
    rows = []
    for student in args.student_sizes:
        for scale in args.scales:
            teacher = load_teacher(args.teacher, class_names=classes, size=student * scale, conf=0.025)
            report, _ = evaluate_predictor(on_shrunk_images(teacher, student), *find_split(args.data, "val"),
                                           list(teacher.class_names), max_images=args.images)
            rows.append({"student_imgsz": student, "scale": scale, "teacher_imgsz": teacher.input_size,
                         **{key: report.metrics[key] for key in METRICS}})
    return {"data": args.data.name, "classes": args.classes or "all", "teacher": args.teacher.name,
            "images": args.images, "rows": rows}


def show(part: str, result: dict[str, Any]) -> None:
    table = Table("student px", "teacher px", *METRICS, title=f"{result['teacher']} on {result['data']} val "
                  f"(first {result['images']} images, classes {result['classes']}) shrunk to the student's size")
    for row in result["rows"]:
        table.add_row(str(row["student_imgsz"]), str(row["teacher_imgsz"]), *(f"{row[k]:.1f}" for k in METRICS))
    console.print(table)


def main() -> None:
    parser = parser_with_common(__doc__)
    parser.set_defaults(data=Path("../shared/datasets/people"), out=Path("runs/bench/distill"))
    add = parser.add_argument
    add("--classes", default="person", help="comma-separated classes scored (default person; '' for all)")
    add("--teacher", type=Path, default=Path("../shared/peers/yolox-nano/yolox_nano.onnx"))
    add("--images", type=int, default=400, help="val images scored (the first, in image-id order)")
    add("--student-sizes", type=int, nargs="+", default=[160, 320], help="the students' input sizes")
    add("--scales", type=int, nargs="+", default=[1, 2], help="the teacher's size over the student's")
    args = parser.parse_args()
    run_part(f"teacher-scale-{args.data.name}-{args.classes or 'all'}", args, measure, show)


if __name__ == "__main__":
    main()

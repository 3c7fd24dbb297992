"""The peers' own accuracy (FastestDet, NanoDet-m under ../shared/peers) on a COCO-format val split, through
edgedet's evaluation loop; their decoders live in ``edgedet.runtime.peers``.

    python benchmarks/peers.py [--data ../shared/datasets/coco-mini] [--classes person]

prints the table and writes runs/bench/peers.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgedet.data.annotations import find_split
from edgedet.evaluate.images import evaluate_predictor
from edgedet.io import atomic_write_json
from edgedet.runtime.peers import coco80_names, load_peers

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description="AP of the peer detectors on a COCO-format val split.")
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "coco-mini")
    parser.add_argument("--peers", type=Path, default=SHARED / "peers")
    parser.add_argument("--classes", nargs="*", help="restrict to these classes (default: all 80)")
    parser.add_argument("--json-out", type=Path, default=Path("runs/bench/peers.json"))
    args = parser.parse_args()
    annotations, images = find_split(args.data, "val")
    peers = load_peers(args.peers, annotations, args.classes or coco80_names(annotations))
    table, numbers = Table("peer", "AP", "AP50", title=f"{args.data.name} val, {args.classes or 'all 80 classes'}"), {}
    for name, (peer, _) in peers.items():
        report, _ = evaluate_predictor(peer, annotations, images, peer.class_names)
        numbers |= {f"{name}.AP": report.metrics["AP"], f"{name}.AP50": report.metrics["AP50"]}
        table.add_row(name, f"{report.metrics['AP']:.1f}", f"{report.metrics['AP50']:.1f}")
    Console().print(table)
    atomic_write_json(args.json_out, numbers)
    print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()

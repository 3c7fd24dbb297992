"""Decoders for the peer detectors under ../shared/peers (FastestDet, NanoDet-m), as edgedet predictors.

They belong to the benchmarks, not to the package: each turns a BGR image into ``Detections`` in original-image
pixels with the input and output conventions that ../shared/peers/README.md documents, so that the peers go through
edgedet's own evaluation loop on the same images. ``keep`` restricts them to a class subset (to compare with a
model trained on, say, ``person`` alone).

    python benchmarks/peers.py [--data ../shared/datasets/coco-mini] [--classes person]

prints the peers' AP on the val split and writes runs/bench/peers.json.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgedet.data.annotations import load_coco
from edgedet.runtime.detections import Detections
from edgedet.runtime.postprocess import batched_nms
from edgedet.runtime.session import make_session

PEERS = Path(__file__).resolve().parents[1].parent / "shared" / "peers"
FASTESTDET = PEERS / "fastestdet" / "FastestDet.onnx"
NANODET = PEERS / "nanodet-m" / "nanodet.onnx"
NANODET_MEAN = np.array([103.53, 116.28, 123.675], np.float32)
NANODET_STD = np.array([57.375, 57.12, 58.395], np.float32)


def coco80_names(annotations: Path) -> list[str]:
    """The peers' 80 classes in order: COCO's category names sorted by category id (as their labels count)."""
    coco = load_coco(annotations)
    categories = coco.loadCats(coco.getCatIds())
    return [c["name"] for c in sorted(categories, key=lambda c: c["id"])]


class _Peer:
    def __init__(self, path: Path, names: list[str], *, threads: int, conf: float, iou: float,
                 keep: list[str] | None) -> None:
        self.session = make_session(str(path), threads=threads)
        self.input_name = self.session.get_inputs()[0].name
        self.conf, self.iou = conf, iou
        self.class_names = keep or names
        self.label_of = np.full(len(names), -1)  # COCO-80 index -> index into class_names, -1: not wanted
        self.label_of[[names.index(n) for n in self.class_names]] = np.arange(len(self.class_names))

    def _finish(self, boxes: np.ndarray, scores: np.ndarray, labels80: np.ndarray) -> Detections:
        """Keep the wanted classes above ``conf``, per-class NMS, labels re-indexed into ``class_names``."""
        labels = self.label_of[labels80]
        wanted = (labels >= 0) & (scores > self.conf)
        boxes, scores, labels = boxes[wanted], scores[wanted], labels[wanted]
        keep = batched_nms(boxes, scores, labels, self.iou)[:100]
        return Detections(boxes[keep].astype(np.float32), scores[keep].astype(np.float32), labels[keep])


class FastestDet(_Peer):
    """352x352 stretched resize, /255; one box per grid cell, score obj^0.6 * cls^0.4 (README of the peer)."""

    def __init__(self, names: list[str], *, threads: int = 1, conf: float = 0.05, keep: list[str] | None = None
                 ) -> None:
        super().__init__(FASTESTDET, names, threads=threads, conf=conf, iou=0.45, keep=keep)

    def __call__(self, image: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        resized = cv2.resize(image, (352, 352), interpolation=cv2.INTER_AREA)
        tensor = resized.transpose(2, 0, 1)[None].astype(np.float32) / 255
        out = self.session.run(None, {self.input_name: tensor})[0][0]  # (85, 22, 22)
        grid = out.shape[1]
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        obj, tx, ty, tw, th = out[:5]
        cls = out[5:].reshape(80, -1)
        labels80 = cls.argmax(0)
        scores = obj.reshape(-1) ** 0.6 * cls.max(0) ** 0.4
        cx = (xs + np.tanh(tx)).reshape(-1) / grid * width
        cy = (ys + np.tanh(ty)).reshape(-1) / grid * height
        w = 1 / (1 + np.exp(-tw.reshape(-1))) * width
        h = 1 / (1 + np.exp(-th.reshape(-1))) * height
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).clip(0, [width, height] * 2)
        return self._finish(boxes, scores, labels80)


class NanoDetM(_Peer):
    """320x320 centred letterbox with zero padding, per-channel BGR normalisation; GFL heads at strides 8/16/32."""

    def __init__(self, names: list[str], *, threads: int = 1, conf: float = 0.05, keep: list[str] | None = None
                 ) -> None:
        super().__init__(NANODET, names, threads=threads, conf=conf, iou=0.6, keep=keep)
        outputs = self.session.get_outputs()
        self.cls_names = [o.name for o in outputs if o.shape[-1] == 80]  # in stride order 8, 16, 32
        self.box_names = [o.name for o in outputs if o.shape[-1] == 32]

    def __call__(self, image: np.ndarray) -> Detections:
        size = 320
        height, width = image.shape[:2]
        scale = size / max(height, width)
        new_w, new_h = round(width * scale), round(height * scale)
        left, top = (size - new_w) // 2, (size - new_h) // 2
        canvas = np.zeros((size, size, 3), np.float32)
        canvas[top:top + new_h, left:left + new_w] = cv2.resize(image, (new_w, new_h))
        tensor = ((canvas - NANODET_MEAN) / NANODET_STD).transpose(2, 0, 1)[None].astype(np.float32)
        results = dict(zip([o.name for o in self.session.get_outputs()],
                           self.session.run(None, {self.input_name: tensor})))
        all_boxes, all_scores, all_labels = [], [], []
        for stride, cls_name, box_name in zip((8, 16, 32), self.cls_names, self.box_names):
            cls, reg = results[cls_name], results[box_name].reshape(-1, 4, 8)
            cells = size // stride
            ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
            centres = (np.stack([xs.reshape(-1), ys.reshape(-1)], 1) + 0.5) * stride  # cell centres
            bins = np.exp(reg - reg.max(-1, keepdims=True))
            distances = (bins / bins.sum(-1, keepdims=True) * np.arange(8)).sum(-1) * stride  # (N, 4) l t r b
            all_boxes.append(np.concatenate([centres - distances[:, :2], centres + distances[:, 2:]], 1))
            all_scores.append(cls.max(1))
            all_labels.append(cls.argmax(1))
        boxes = np.concatenate(all_boxes)
        boxes = ((boxes - [left, top, left, top]) / scale).clip(0, [width, height] * 2)
        return self._finish(boxes, np.concatenate(all_scores), np.concatenate(all_labels))


def main() -> None:
    """The peers' own accuracy on a COCO-format val split, through edgedet's evaluation loop."""
    import argparse

    from rich.console import Console
    from rich.table import Table

    from edgedet.data.annotations import find_split
    from edgedet.evaluate.images import evaluate_predictor
    from edgedet.io import atomic_write_json

    parser = argparse.ArgumentParser(description="AP of the peer detectors on a COCO-format val split.")
    parser.add_argument("--data", type=Path, default=PEERS.parent / "datasets" / "coco-mini")
    parser.add_argument("--classes", nargs="*", help="restrict to these classes (default: all 80)")
    parser.add_argument("--json-out", type=Path, default=Path("runs/bench/peers.json"))
    args = parser.parse_args()
    annotations, images = find_split(args.data, "val")
    names = coco80_names(annotations)
    table, numbers = Table("peer", "AP", "AP50", title=f"{args.data.name} val, {args.classes or 'all 80 classes'}"), {}
    for peer in (FastestDet(names, keep=args.classes), NanoDetM(names, keep=args.classes)):
        report, _ = evaluate_predictor(peer, annotations, images, peer.class_names)
        name = type(peer).__name__
        numbers |= {f"{name}.AP": report.metrics["AP"], f"{name}.AP50": report.metrics["AP50"]}
        table.add_row(name, f"{report.metrics['AP']:.1f}", f"{report.metrics['AP50']:.1f}")
    Console().print(table)
    atomic_write_json(args.json_out, numbers)
    print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()

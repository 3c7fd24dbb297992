"""Peer detectors by other projects (FastestDet, NanoDet-m; COCO-trained ONNX) as edgedet predictors.

Each turns a BGR image into ``Detections`` in original-image pixels with the input and output conventions that its
project documents, so that the peers go through edgedet's own evaluation and benchmark on the same images.
``keep`` restricts a peer to a class subset (to compare with a model trained on, say, ``person`` alone).
A peers folder holds ``fastestdet/FastestDet.onnx`` and ``nanodet-m/nanodet.onnx`` (this project's
``../shared/peers`` has both). Torch-free.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgedet.data.annotations import load_coco
from edgedet.errors import UsageError
from edgedet.runtime.detections import Detections
from edgedet.runtime.postprocess import batched_nms
from edgedet.runtime.session import make_session

PEER_FILES = {"FastestDet": "fastestdet/FastestDet.onnx", "NanoDet-m": "nanodet-m/nanodet.onnx"}
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

    def __init__(self, path: Path, names: list[str], *, threads: int = 1, conf: float = 0.05,
                 keep: list[str] | None = None) -> None:
        super().__init__(path, names, threads=threads, conf=conf, iou=0.45, keep=keep)

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

    def __init__(self, path: Path, names: list[str], *, threads: int = 1, conf: float = 0.05,
                 keep: list[str] | None = None) -> None:
        super().__init__(path, names, threads=threads, conf=conf, iou=0.6, keep=keep)
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


def load_peers(folder: Path, annotations: Path, class_names: list[str], *, threads: int = 1
               ) -> dict[str, tuple[_Peer, Path]]:
    """``{name: (predictor, onnx path)}`` for every peer found in ``folder``, restricted to ``class_names``.
    Fails when the classes are not COCO's (the peers know only those) or no peer is there."""
    names = coco80_names(annotations)
    if len(names) != 80:
        raise UsageError(f"{annotations}: the peers' labels index COCO's 80 categories, this file has {len(names)}")
    unknown = [n for n in class_names if n not in names]
    if unknown:
        raise UsageError(f"the peers detect COCO's 80 classes; '{unknown[0]}' is not one of them")
    keep = None if class_names == names else class_names
    found = {name: folder / file for name, file in PEER_FILES.items() if (folder / file).is_file()}
    if not found:
        raise UsageError(f"{folder}: no peer models ({', '.join(PEER_FILES.values())})")
    kinds = {"FastestDet": FastestDet, "NanoDet-m": NanoDetM}
    return {name: (kinds[name](path, names, threads=threads, keep=keep), path) for name, path in found.items()}

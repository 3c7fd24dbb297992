"""Other projects' COCO-trained ONNX detectors (FastestDet, NanoDet-m, PP-PicoDet-S, YOLOX-Nano) as edgedet
predictors, and ``load_teacher``: any of them, or an edgedet export, as a teacher that labels images.

An adapter is one subclass of ``PeerDetector`` that declares a model's whole contract in one place:

- input: the graph's size (YOLOX rewrites its graph to run at 640, or at the ``size`` asked for), geometry
  (``resize``: ``stretch`` to SxS, ``centre`` letterbox with zero padding, or ``top-left`` letterbox padded with 114
  as ``edgedet.runtime.preprocess.letterbox``), ``interpolation``, and per-channel ``mean``/``std`` on BGR 0..255
  (None: the raw pixels);
- output: ``matches(inputs, outputs)`` recognises the graph by its tensor shapes, ``dense_decode`` turns the outputs
  into a box in model-input pixels and a score of each COCO-80 class per point; ``nms_iou`` is the per-class NMS after
  each point's best class (``dense`` gives them all, for distillation).

``ADAPTERS`` maps each adapter's name to it: adding a model is one subclass and one entry there. ``load_teacher``
picks the adapter from an explicit ``PATH.onnx:NAME``, else uses ``OnnxDetector`` when an edgedet ``model.json``
sidecar is beside the file, else the adapter whose ``file_pattern`` fits the file name, else the one whose shapes
fit. Every detector returns ``Detections`` in original-image pixels with labels indexing its ``class_names``;
``keep`` (or ``load_teacher``'s ``class_names``, matched by name as ``edgedet.data.formats.canonical_name`` spells
them) restricts it to a class subset. ``load_peers`` gives the FastestDet and NanoDet-m pair that the pipeline
compares against (``../shared/peers`` has all of them; its README documents each contract). Torch-free.
"""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import onnx

from edgedet.data.annotations import load_coco
from edgedet.data.formats import COCO80_NAMES, canonical_name
from edgedet.errors import UsageError
from edgedet.progress import stderr
from edgedet.runtime.detections import Detections
from edgedet.runtime.onnx_detector import OnnxDetector, open_session
from edgedet.runtime.postprocess import REG_CLIP, anchor_points, batched_nms
from edgedet.runtime.preprocess import letterbox, letterbox_size
from edgedet.runtime.session import Providers
from edgedet.runtime.sidecar import sidecar_path

PEER_FILES = {"FastestDet": "fastestdet/FastestDet.onnx", "NanoDet-m": "nanodet-m/nanodet.onnx"}
GFL_MEAN = (103.53, 116.28, 123.675)  # NanoDet's and PicoDet's BGR normalisation
GFL_STD = (57.375, 57.12, 58.395)
MAX_DETECTIONS = 100
Shapes = list[list[int | str]]  # one list of dimensions per graph input or output; str for a symbolic dimension


class Teacher(Protocol):
    """What labelling needs of a model: its class names and ``image_bgr -> Detections`` in image pixels."""

    class_names: list[str]

    def __call__(self, image_bgr: np.ndarray) -> Detections: ...


def coco80_names(annotations: Path) -> list[str]:
    """The peers' 80 classes in order: COCO's category names sorted by category id (as their labels count)."""
    coco = load_coco(annotations)
    categories = coco.loadCats(coco.getCatIds())
    return [c["name"] for c in sorted(categories, key=lambda c: c["id"])]


def _label_map(names: list[str], keep: list[str]) -> np.ndarray:
    """Index into ``names`` -> index into ``keep`` (-1: not wanted)."""
    label_of = np.full(len(names), -1)
    label_of[[names.index(n) for n in keep]] = np.arange(len(keep))
    return label_of


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _to_image_pixels(boxes: np.ndarray, geometry: tuple[float, float, float, float]) -> np.ndarray:
    """(N, 4) boxes in model-input pixels -> image pixels, by the ``(sx, sy, left, top)`` that ``preprocess``
    returns."""
    sx, sy, left, top = geometry
    return (boxes - [left, top, left, top]) / [sx, sy, sx, sy]


class PeerDetector:
    """Base of the adapters: the input contract applied, the graph run, ``decode``, then class selection and NMS."""

    name: str
    file_pattern: str  # fnmatch pattern on the lower-case file name
    resize: str = "stretch"
    interpolation: int = cv2.INTER_LINEAR
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    nms_iou: float = 0.6

    def __init__(self, path: Path, names: list[str] | None = None, *, threads: int = 1, conf: float = 0.05,
                 keep: list[str] | None = None, providers: Providers | None = None, size: int | None = None) -> None:
        """``size`` runs a graph without baked-in sizes (YOLOX) at that input size instead of the adapter's; a graph
        with fixed sizes keeps its own (``input_size`` says which)."""
        names = names or COCO80_NAMES
        if size is not None:
            self.size = size
        self.session = open_session(self._graph(Path(path)), threads=threads, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.input_size = int(self.session.get_inputs()[0].shape[-1])
        self.num_classes, self.conf = len(names), conf
        self.class_names = keep or names
        self.label_of = _label_map(names, self.class_names)
        self.class_columns = [names.index(name) for name in self.class_names]  # of each kept class in the output

    @classmethod
    def matches(cls, inputs: Shapes, outputs: Shapes) -> bool:
        """Whether a graph with these input and output shapes has this adapter's layout."""
        raise NotImplementedError

    def dense_decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Graph outputs -> ((N, 4) boxes in model-input pixels, (N, 80) scores): every point, every class."""
        raise NotImplementedError

    def decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Graph outputs -> ((N, 4) boxes in model-input pixels, (N,) scores, (N,) class indices): each point's
        best class."""
        boxes, scores = self.dense_decode(outputs)
        labels = scores.argmax(1)
        return boxes, scores[np.arange(len(scores)), labels], labels

    def _graph(self, path: Path) -> Path | bytes:
        """The model to run: the file itself, unless the adapter runs it at another size than it was saved for."""
        return path

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        """(H, W, 3) BGR -> ((1, 3, S, S) float32 as the model wants it, (sx, sy, left, top): model pixels -> image
        pixels as (box - offset) / scale)."""
        size, (height, width) = self.input_size, image.shape[:2]
        if self.resize == "top-left":
            rgb, scale = letterbox(image, size)
            tensor, geometry = rgb[:, ::-1], (scale, scale, 0, 0)
        elif self.resize == "stretch":
            resized = cv2.resize(image, (size, size), interpolation=self.interpolation)
            tensor, geometry = resized.transpose(2, 0, 1)[None].astype(np.float32), (size / width, size / height, 0, 0)
        else:  # centre
            scale, new_h, new_w = letterbox_size(height, width, size)
            left, top = (size - new_w) // 2, (size - new_h) // 2
            canvas = np.zeros((size, size, 3), np.uint8)
            canvas[top:top + new_h, left:left + new_w] = cv2.resize(image, (new_w, new_h),
                                                                   interpolation=self.interpolation)
            tensor, geometry = canvas.transpose(2, 0, 1)[None].astype(np.float32), (scale, scale, left, top)
        if self.mean is not None:
            mean, std = (np.asarray(v, np.float32).reshape(1, 3, 1, 1) for v in (self.mean, self.std))
            tensor = (tensor - mean) / std
        return np.ascontiguousarray(tensor, dtype=np.float32), geometry

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: tensor})

    def postprocess(self, outputs: list[np.ndarray], geometry: tuple[float, float, float, float],
                    orig_size: tuple[int, int]) -> Detections:
        """Graph outputs -> detections in image pixels (the same three steps as ``OnnxDetector``, for timing)."""
        height, width = orig_size
        boxes, scores, labels = self.decode(outputs)
        boxes = _to_image_pixels(boxes, geometry).clip(0, [width, height] * 2)
        return self._finish(boxes, scores, labels)

    def __call__(self, image: np.ndarray) -> Detections:
        tensor, geometry = self.preprocess(image)
        return self.postprocess(self.infer(tensor), geometry, image.shape[:2])

    def dense(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) BGR -> ((N, 4) boxes in image pixels, (N, len(class_names)) scores) at every point of the
        graph's grids, before any threshold or NMS: what dense distillation learns from."""
        tensor, geometry = self.preprocess(image)
        boxes, scores = self.dense_decode(self.infer(tensor))
        return _to_image_pixels(boxes, geometry), scores[:, self.class_columns]

    def _finish(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> Detections:
        """Keep the wanted classes above ``conf``, per-class NMS, labels re-indexed into ``class_names``."""
        labels = self.label_of[labels]
        wanted = (labels >= 0) & (scores > self.conf)
        boxes, scores, labels = boxes[wanted], scores[wanted], labels[wanted]
        keep = batched_nms(boxes, scores, labels, self.nms_iou)[:MAX_DETECTIONS]
        return Detections(boxes[keep].astype(np.float32), scores[keep].astype(np.float32), labels[keep])


class FastestDet(PeerDetector):
    """352x352 stretch (INTER_AREA), /255; one box per grid cell [obj, tx, ty, tw, th, classes], score
    obj^0.6 * cls^0.4, centre (cell + tanh) / grid, size sigmoid, relative to the input; NMS 0.45."""

    name, file_pattern = "fastestdet", "fastestdet*.onnx"
    interpolation, mean, std, nms_iou = cv2.INTER_AREA, (0, 0, 0), (255, 255, 255), 0.45

    @classmethod
    def matches(cls, inputs: Shapes, outputs: Shapes) -> bool:
        return len(outputs) == 1 and len(outputs[0]) == 4 and outputs[0][1] == 85

    def dense_decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        out = outputs[0][0]  # (85, GH, GW)
        grid_h, grid_w = out.shape[1:]
        ys, xs = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")
        obj, tx, ty, tw, th = out[:5]
        cls = out[5:].reshape(self.num_classes, -1)
        size = self.input_size
        cx = (xs + np.tanh(tx)).reshape(-1) / grid_w * size
        cy = (ys + np.tanh(ty)).reshape(-1) / grid_h * size
        w, h = _sigmoid(tw.reshape(-1)) * size, _sigmoid(th.reshape(-1)) * size
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
        return boxes, obj.reshape(-1, 1) ** 0.6 * cls.T ** 0.4


class _Gfl(PeerDetector):
    """NanoDet's and PicoDet's head: per stride (8, 16, 32, ...) a (N, K) sigmoid class map, then per stride an
    (N, 32) box map (4 sides x 8 bins: softmax, expected bin times stride = distance from the cell centre)."""

    mean, std = GFL_MEAN, GFL_STD
    levels: int

    @classmethod
    def matches(cls, inputs: Shapes, outputs: Shapes) -> bool:
        widths = [o[-1] for o in outputs]
        return len(outputs) == 2 * cls.levels and widths.count(32) == cls.levels

    def dense_decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        class_maps = [o.reshape(-1, o.shape[-1]) for o in outputs if o.shape[-1] == self.num_classes]
        box_maps = [o.reshape(-1, 4, 8) for o in outputs if o.shape[-1] == 32]
        all_boxes = []
        for level, (cls, reg) in enumerate(zip(class_maps, box_maps)):
            stride = 8 << level
            side = math.isqrt(len(cls))  # cells per side: ceil(size / stride), as the graph pads the last level
            centres = anchor_points(side * stride, (stride,))[0]
            bins = np.exp(reg - reg.max(-1, keepdims=True))
            distances = (bins / bins.sum(-1, keepdims=True) * np.arange(8)).sum(-1) * stride  # (N, 4) l t r b
            all_boxes.append(np.concatenate([centres - distances[:, :2], centres + distances[:, 2:]], 1))
        return np.concatenate(all_boxes), np.concatenate(class_maps)


class NanoDetM(_Gfl):
    """NanoDet-m (320 or 416): centred letterbox with zero padding; three levels; NMS 0.6."""

    name, file_pattern, resize, levels = "nanodet", "nanodet*.onnx", "centre", 3


class PicoDet(_Gfl):
    """PP-PicoDet-S (416 or 512): stretched to SxS (a letterbox costs it accuracy); four levels; NMS 0.6."""

    name, file_pattern, resize, levels = "picodet", "picodet*.onnx", "stretch", 4


class YoloX(PeerDetector):
    """YOLOX-Nano at 640 (saved for 416; its graph has no baked-in sizes): BGR 0..255 letterboxed to the top left,
    padded with 114; per point of strides 8, 16, 32 [x, y, w, h, obj, classes]; score obj * cls; NMS 0.45."""

    name, file_pattern, size, resize, nms_iou = "yolox", "yolox*.onnx", 640, "top-left", 0.45

    @classmethod
    def matches(cls, inputs: Shapes, outputs: Shapes) -> bool:
        return len(outputs) == 1 and len(outputs[0]) == 3 and outputs[0][2] == 85

    def _graph(self, path: Path) -> Path | bytes:
        model = onnx.load(str(path))
        dims = model.graph.input[0].type.tensor_type.shape.dim
        if [dims[2].dim_value, dims[3].dim_value] == [self.size, self.size]:
            return path
        dims[2].dim_value = dims[3].dim_value = self.size
        model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "N"
        del model.graph.value_info[:]  # intermediate shapes recorded for the saved size
        return model.SerializeToString()

    def dense_decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        raw = outputs[0][0]  # (N, 5 + K)
        centres, strides = anchor_points(self.input_size)
        strides = strides[:, None]
        xy = raw[:, :2] * strides + centres - strides / 2  # YOLOX's grid is the cells' corners
        half = np.exp(np.minimum(raw[:, 2:4], REG_CLIP)) * strides / 2
        return np.concatenate([xy - half, xy + half], 1), raw[:, 4:5] * raw[:, 5:]


ADAPTERS: dict[str, type[PeerDetector]] = {a.name: a for a in (FastestDet, NanoDetM, PicoDet, YoloX)}
HOW_TO_NAME = (f"known adapters: {', '.join(ADAPTERS)}, or an edgedet export with its model.json beside it; name "
               "one as PATH.onnx:ADAPTER (e.g. --teacher model.onnx:yolox) if the model follows its contract, or add "
               "an adapter to edgedet.runtime.peers.ADAPTERS")


class _ClassSubset:
    """An edgedet model restricted to some of its classes, labels re-indexed into them."""

    def __init__(self, detector: OnnxDetector, keep: list[str]) -> None:
        self.detector, self.class_names = detector, keep
        self.label_of = _label_map(detector.class_names, keep)

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        found = self.detector(image_bgr)
        labels = self.label_of[found.labels]
        wanted = labels >= 0
        return Detections(found.boxes_xyxy[wanted], found.scores[wanted], labels[wanted])


def _io_shapes(path: Path) -> tuple[Shapes, Shapes]:
    """The shapes of a graph's real inputs (weights kept as inputs left out) and outputs, without running it."""
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as err:  # protobuf raises its own types for garbage and foreign files
        raise UsageError(f"{path}: not a loadable ONNX model ({type(err).__name__})") from None
    weights = {w.name for w in graph.initializer}

    def shape(value: onnx.ValueInfoProto) -> list[int | str]:
        return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]

    return [shape(v) for v in graph.input if v.name not in weights], [shape(v) for v in graph.output]


def _candidates(path: Path, inputs: Shapes, outputs: Shapes) -> list[type[PeerDetector]]:
    """The adapters whose file pattern fits the file name, else those whose shapes fit the graph."""
    by_name = [a for a in ADAPTERS.values() if fnmatch.fnmatch(path.name.lower(), a.file_pattern)]
    return by_name or [a for a in ADAPTERS.values() if a.matches(inputs, outputs)]


def is_detector(spec: str | Path) -> bool:
    """Whether ``load_teacher`` knows how to read this model's output (a sidecar, a named or fitting adapter), as
    opposed to a bare graph (a backbone, a block) that can only be timed."""
    path, named = split_spec(spec)
    return (named is not None or sidecar_path(path).is_file()
            or len(_candidates(path, *_io_shapes(path))) == 1)


def _adapter_for(path: Path, named: str | None) -> type[PeerDetector]:
    """The adapter for a model without a sidecar: the one named, else by file name, else by shapes."""
    inputs, outputs = _io_shapes(path)
    layout = f"inputs {inputs}, outputs {outputs}"
    if named is not None:
        adapter = ADAPTERS[named]
    else:
        candidates = _candidates(path, inputs, outputs)
        if len(candidates) != 1:
            nothing = f"no sidecar {sidecar_path(path).name} beside it and no"
            raise UsageError(f"{path}: {nothing if not candidates else 'more than one'} adapter fits this model "
                             f"({layout}); {HOW_TO_NAME}")
        adapter = candidates[0]
    if not adapter.matches(inputs, outputs):
        raise UsageError(f"{path}: not the {adapter.name} layout ({layout}); {HOW_TO_NAME}")
    return adapter


def split_spec(spec: str | Path) -> tuple[Path, str | None]:
    """``PATH.onnx`` or ``PATH.onnx:ADAPTER`` -> (path, adapter name or None)."""
    head, colon, tail = str(spec).rpartition(":")
    if not colon or not head or "/" in tail or "\\" in tail:
        return Path(spec), None
    if tail.lower() not in ADAPTERS:
        raise UsageError(f"{spec}: unknown adapter '{tail}'; {HOW_TO_NAME}")
    return Path(head), tail.lower()


def _select_classes(available: list[str], wanted: list[str] | None, where: str) -> list[str] | None:
    """The model's own names for the ``wanted`` classes it has, in the wanted order (None: all of them), matched by
    canonical name (``motorbike`` is ``motorcycle``); one warning line names the ones it lacks, none is an error."""
    if wanted is None:
        return None
    own = {canonical_name(n): n for n in available}
    have = [own[canonical_name(n)] for n in wanted if canonical_name(n) in own]
    missing = [n for n in wanted if canonical_name(n) not in own]
    if not have:
        raise UsageError(f"{where} detects none of {', '.join(wanted)}; it knows {', '.join(available)}")
    if missing:
        stderr.print(f"warning: {where} cannot provide {', '.join(missing)}: no boxes of "
                     f"{'that class' if len(missing) == 1 else 'those classes'} from it",
                     markup=False, highlight=False, soft_wrap=True)
    return have


def load_teacher(spec: str | Path, *, class_names: list[str] | None = None, conf: float = 0.05,
                 threads: int = 1, providers: Providers | None = None, size: int | None = None) -> Teacher:
    """A teacher from ``PATH.onnx`` (edgedet export with sidecar, or a peer recognised by file name or shapes) or
    ``PATH.onnx:ADAPTER``; ``class_names`` restricts it to those of them it has (see ``_select_classes``);
    ``size`` runs a peer whose graph allows it at that input size."""
    path, named = split_spec(spec)
    if not path.is_file():
        raise UsageError(f"{path}: no such model file")
    if named is None and sidecar_path(path).is_file():
        detector = OnnxDetector(path, conf=conf, threads=threads, providers=providers)
        keep = _select_classes(detector.class_names, class_names, str(path))
        return _ClassSubset(detector, keep) if keep else detector
    adapter = _adapter_for(path, named)
    keep = _select_classes(COCO80_NAMES, class_names, str(path))
    return adapter(path, threads=threads, conf=conf, keep=keep, providers=providers, size=size)


def load_peers(folder: Path, annotations: Path, class_names: list[str], *, threads: int = 1
               ) -> dict[str, tuple[PeerDetector, Path]]:
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

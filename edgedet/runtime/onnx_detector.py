"""An exported edgedet model in ONNX Runtime: letterbox -> network -> numpy decode + NMS. Torch-free.

The three stages are separate methods so that benchmarks and the camera loop can time them apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgedet.errors import UsageError
from edgedet.runtime.detections import Detections
from edgedet.runtime.postprocess import anchor_points, decode, select_boxes, to_original
from edgedet.runtime.preprocess import letterbox
from edgedet.runtime.session import Providers, make_session
from edgedet.runtime.sidecar import ModelCard, read_card


def _where(model: Path | bytes) -> str:
    return "the model" if isinstance(model, bytes) else str(model)


def open_session(model: Path | bytes, *, threads: int = 1, providers: Providers | None = None
                 ) -> ort.InferenceSession:
    """An ONNX Runtime session for a file or model bytes; a missing or non-ONNX file is a usage error."""
    if not isinstance(model, bytes) and not Path(model).is_file():
        raise UsageError(f"{model}: no such model file")
    try:
        return make_session(model if isinstance(model, bytes) else str(model), threads=threads, providers=providers)
    except Exception as err:  # ORT raises its own types for garbage, truncated or foreign files
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise UsageError(f"{_where(model)}: not a loadable ONNX model ({first})") from None


def check_onnx(model: Path | bytes) -> None:
    """onnx.checker on a file or model bytes, as a usage error."""
    try:
        onnx.checker.check_model(onnx.load_from_string(model) if isinstance(model, bytes) else str(model))
    except Exception as err:
        raise UsageError(f"{_where(model)}: onnx.checker failed ({str(err).splitlines()[0][:160]})") from None


class OnnxDetector:
    """``detector(image_bgr) -> Detections`` in original-image pixels, from ``model.onnx`` + its ``model.json``, or
    from model bytes with their ``card`` (candidates that exist only in memory, such as the quantizer's)."""

    def __init__(self, model: Path | bytes, *, card: ModelCard | None = None, threads: int = 1, conf: float = 0.05,
                 iou: float = 0.6, providers: Providers | None = None) -> None:
        self.where = _where(model)
        self.card: ModelCard = card or read_card(Path(model))
        self.session = open_session(model, threads=threads, providers=providers)
        self.conf, self.iou = conf, iou
        self.points, self.strides = anchor_points(self.card.imgsz)
        self.decoded_in_graph = self.card.output.get("decode") == "boxes"
        self._check_io()
        self.input_name = self.session.get_inputs()[0].name

    @property
    def class_names(self) -> list[str]:
        return self.card.class_names

    def _check_io(self) -> None:
        size = self.card.imgsz
        shape = list(self.session.get_inputs()[0].shape)
        if shape[1:] != [3, size, size]:
            raise UsageError(f"{self.where}: the model takes {shape} but its sidecar says {size}x{size}; "
                             f"re-export with `edgedet export --imgsz {size}` or fix the sidecar")
        output = list(self.session.get_outputs()[0].shape)
        expected = [output[1] if self.decoded_in_graph else len(self.points), 4 + len(self.card.class_names)]
        if output[1:] != expected:
            raise UsageError(f"{self.where}: output {output} does not match the sidecar's {size}px input and "
                             f"{len(self.card.class_names)} classes (expected [1, {expected[0]}, {expected[1]}])")

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        return letterbox(image_bgr, self.card.imgsz)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """(1, 3, S, S) -> raw head output (N, 4 + K) of the one image."""
        return self.session.run(None, {self.input_name: tensor})[0][0]

    def postprocess(self, raw: np.ndarray, scale: float, orig_size: tuple[int, int]) -> Detections:
        detections = (select_boxes(raw, conf=self.conf, iou=self.iou) if self.decoded_in_graph
                      else decode(raw, self.points, self.strides, conf=self.conf, iou=self.iou))
        return to_original(detections, scale, orig_size)

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        tensor, scale = self.preprocess(image_bgr)
        return self.postprocess(self.infer(tensor), scale, image_bgr.shape[:2])

"""ONNX Runtime static INT8 quantization: QDQ format, U8 activations, S8 per-channel weights.

That combination is the fast one on x86 with VNNI (S8S8 and dynamic quantization run slower than FP32 here) and
the one TensorRT consumes on Jetson. Torch-free.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static


class _Batches(CalibrationDataReader):
    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self._feeds: Iterator[np.ndarray] = iter(batches)
        self._name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._feeds, None)
        return None if batch is None else {self._name: batch}


def quantize_qdq(model: bytes, calibration: Iterable[np.ndarray], *,
                 nodes_to_exclude: list[str] | None = None) -> bytes:
    """INT8 QDQ model bytes, calibrated (min/max) on ``calibration`` input batches."""
    proto = onnx.load_from_string(model)
    input_name = proto.graph.input[0].name
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs generic advice on the root logger at WARNING
    ort.set_default_logger_severity(3)  # and its calibration session warns about initializers it prunes
    try:
        with tempfile.TemporaryDirectory(prefix="edgedet-quant-") as tmp:
            out = Path(tmp) / "int8.onnx"
            quantize_static(proto, out, _Batches(input_name, calibration), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                            nodes_to_exclude=nodes_to_exclude)
            return out.read_bytes()
    finally:
        root.setLevel(level)

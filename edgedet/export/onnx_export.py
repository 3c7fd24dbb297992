"""Export a torch module to ONNX bytes (legacy TorchScript exporter: no onnxscript needed, clean raw graphs)."""

from __future__ import annotations

import datetime
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from edgedet.errors import EdgedetError
from edgedet.io import atomic_write_bytes, atomic_write_json

OPSET = 17
HALF_TOLERANCE = 1e-2  # FP16 vs torch FP32, relative to the largest output: FP16 keeps ~3 significant digits


def export_onnx(module: nn.Module, example: torch.Tensor, *, opset: int = OPSET,
                output_names: list[str] | None = None) -> bytes:
    """ONNX model bytes of ``module`` in eval mode for a fixed input shape (batch 1 is what edge devices run)."""
    buffer = io.BytesIO()
    module = module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=opset, input_names=["images"],
                          output_names=output_names, do_constant_folding=True)
    return buffer.getvalue()


class _Raw(nn.Module):
    """The detector's raw head output as the graph's one output (decode + NMS stay outside)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.detector.raw(images)


@dataclass
class ExportResult:
    onnx_path: Path
    card_path: Path
    max_abs_diff: float  # ONNX Runtime vs torch on the same input, raw outputs
    relative_diff: float  # max_abs_diff / max(1, largest |output|): what the tolerance applies to


def to_half(model: bytes) -> bytes:
    """FP16 weights and compute, FP32 input and output (``keep_io_types``): the runtime's pre- and post-processing
    stay the same, and TensorRT or a GPU provider runs the graph in FP16."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns for every value it clamps to FP16's range
        half = OnnxModel(convert_float_to_float16(onnx.load_from_string(model), keep_io_types=True))
    half.topological_sort()  # the converter appends the input's Cast last; onnx.checker wants graph order
    return half.model.SerializeToString()


def export_checkpoint(checkpoint: Path, out: Path, *, imgsz: int | None = None, opset: int = OPSET,
                      tolerance: float | None = None, half: bool = False) -> ExportResult:
    """``checkpoint`` -> ``out`` (ONNX, raw head; FP16 inside with ``half``) + its sidecar, checked with
    onnx.checker and against torch (``tolerance`` relative: 1e-3 for FP32, ``HALF_TOLERANCE`` for FP16).

    Nothing is written unless both checks pass, so a failed export never leaves a half-valid model behind.
    """
    from edgedet import __version__
    from edgedet.runtime.onnx_detector import check_onnx, open_session
    from edgedet.runtime.sidecar import ModelCard, sidecar_path
    from edgedet.train.checkpoint import load_detector

    detector, state = load_detector(checkpoint, imgsz=imgsz)
    size = detector.arch.imgsz
    example = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 255
    model = export_onnx(_Raw(detector), example, opset=opset, output_names=["raw"])
    if half:
        model = to_half(model)
    tolerance = tolerance if tolerance is not None else HALF_TOLERANCE if half else 1e-3
    with torch.no_grad():
        expected = detector.raw(example).numpy()
    check_onnx(model)
    got = open_session(model).run(None, {"images": example.numpy()})[0]
    diff = float(np.abs(got - expected).max())
    relative = diff / max(1.0, float(np.abs(expected).max()))
    if relative > tolerance:
        raise EdgedetError(f"ONNX Runtime output differs from torch by {diff:.2e} ({relative:.2e} relative, "
                           f"tolerance {tolerance:g}); try another --opset")
    card = ModelCard(arch=str(detector.arch), imgsz=size, class_names=list(state["class_names"]),
                     category_ids=[int(c) for c in state["category_ids"]], precision="fp16" if half else "fp32",
                     version=__version__,
                     output=dict(detector.output_contract),
                     provenance={"checkpoint": str(checkpoint), "epoch": state.get("epoch"), "opset": opset,
                                 "torch": torch.__version__, "created": datetime.datetime.now().isoformat(
                                     timespec="seconds"), "max_abs_diff_vs_torch": diff})
    atomic_write_bytes(out, model)
    atomic_write_json(sidecar_path(out), card.to_json())
    return ExportResult(Path(out), sidecar_path(out), diff, relative)

"""Export a torch module to ONNX bytes (legacy TorchScript exporter: no onnxscript needed, clean raw graphs)."""

from __future__ import annotations

import io
import warnings

import torch
from torch import nn

OPSET = 17


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

"""Guarded INT8 quantization of an exported model on a dataset: calibrate on its train images, guard the AP drop
on its val images, write the INT8 model and its sidecar. The mechanics live in ``edgedet.export.quantize``; this
module ties them to data, evaluation and the sidecar. Torch-free, like everything a device runs."""

from __future__ import annotations

from pathlib import Path

from edgedet.data.annotations import find_split
from edgedet.evaluate.images import evaluate_predictor, split_images
from edgedet.export.quantize import QUANTIZATION, QuantizeResult, calibration_tensors, quantize_guarded
from edgedet.io import atomic_write_bytes, atomic_write_json
from edgedet.progress import stderr
from edgedet.runtime.onnx_detector import OnnxDetector, check_onnx
from edgedet.runtime.sidecar import sidecar_path


def quantize_model(model: Path, data: Path, out: Path, *, calib_images: int = 200, method: str = "minmax",
                   max_ap_drop: float = 1.0, eval_images: int | None = None, threads: int = 2,
                   flavour: str = "cpu") -> QuantizeResult:
    """FP32 ``model`` -> INT8 ``out`` (+ sidecar) in ``flavour`` (``cpu`` or ``tensorrt``), calibrated on ``data``'s
    train images and guarded on its val images. Nothing is written unless quantization completes."""
    check_onnx(model)
    card = OnnxDetector(model).card  # input size vs sidecar, output layout: fail before the slow part
    calibration = calibration_tensors(split_images(data, "train"), card.imgsz, calib_images)
    annotations, images = find_split(data, "val")

    def evaluate(candidate: bytes) -> float:
        report, _ = evaluate_predictor(OnnxDetector(candidate, card=card, threads=threads), annotations, images,
                                       card.class_names, max_images=eval_images)
        return report.metrics["AP"]

    stderr.print(f"calibrating on {len(calibration)} images ({method}), guarding on val")
    result = quantize_guarded(model.read_bytes(), calibration, evaluate, max_ap_drop=max_ap_drop, method=method,
                              flavour=flavour)
    provenance = card.provenance | {
        "quantized_from": str(model), "calibration": {"images": len(calibration), "method": method, "data": str(data)},
        "fp32_AP": result.fp32_ap, "int8_AP": result.int8_ap, "kept_fp32": result.kept_fp32,
        "guard_trials": result.trials}
    int8_card = card.to_json() | {"precision": "int8", "quantization": QUANTIZATION[flavour], "provenance": provenance}
    atomic_write_bytes(out, result.model)
    atomic_write_json(sidecar_path(out), int8_card)
    return result

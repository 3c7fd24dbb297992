"""ONNX Runtime static INT8 quantization in QDQ format, in the flavour of the runtime that will run it.

- ``cpu``: U8 activations, S8 per-channel weights, every op ONNX Runtime quantizes. The fast combination on x86
  with VNNI and on ARM (S8S8 and dynamic quantization run slower than FP32 there).
- ``tensorrt``: what TensorRT's explicit quantization takes: symmetric signed INT8 activations and per-channel
  symmetric INT8 weights, every zero point 0; Q/DQ on the inputs of weighted ops (Conv, MatMul, Gemm) and of residual
  Adds, none on a weighted op's output unless another weighted op reads it, so TensorRT fuses conv + activation +
  residual add in INT8 instead of falling back at a stray Q/DQ. Slower than ``cpu`` on a CPU; it is for Jetson.

Calibration feeds real images through exactly the inference letterbox. When INT8 loses more AP than allowed, the
nodes whose outputs quantize worst (lowest signal-to-quantization-noise ratio, from ONNX Runtime's
``qdq_loss_debug``) are kept in FP32, a few more at a time, until the drop is within budget (partial quantization,
as DAMO-YOLO does). Torch-free.
"""

from __future__ import annotations

import logging
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quant_pre_process, quantize_static)
from onnxruntime.quantization.qdq_loss_debug import (collect_activations, compute_activation_error,
                                                     create_activation_matching,
                                                     modify_model_output_intermediate_tensors)

from edgedet.errors import UsageError
from edgedet.progress import stderr
from edgedet.runtime.preprocess import letterbox, read_bgr

METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}
ACTIVATIONS = ("Clip", "Relu")
SENSITIVITY_IMAGES = 8  # enough to rank nodes; every intermediate tensor of every image is held in memory
QUANTIZATION = {  # per flavour, what its sidecar says a runtime receives
    "cpu": {"flavour": "cpu", "activations": "uint8, asymmetric", "weights": "int8, symmetric, per channel",
            "runs_as_int8_on": "ONNX Runtime CPU (x86 VNNI, ARM)"},
    "tensorrt": {"flavour": "tensorrt", "activations": "int8, symmetric (zero point 0)",
                 "weights": "int8, symmetric (zero point 0), per channel",
                 "runs_as_int8_on": "TensorRT, or ONNX Runtime's TensorRT provider with trt_int8_enable"},
}
FLAVOURS = tuple(QUANTIZATION)
WEIGHTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


class _Batches(CalibrationDataReader):
    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self._feeds: Iterator[np.ndarray] = iter(batches)
        self._name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._feeds, None)
        return None if batch is None else {self._name: batch}


@contextmanager
def _quiet():
    """The quantizer logs generic advice on the root logger and its sessions warn about pruned initializers."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    try:
        yield
    finally:
        root.setLevel(level)


def calibration_tensors(images: list[Path], imgsz: int, count: int) -> list[np.ndarray]:
    """The first ``count`` readable images of ``images``, letterboxed as at inference; none readable is an error."""
    tensors = []
    for path in images:
        image = read_bgr(path)
        if image is not None:
            tensors.append(letterbox(image, imgsz)[0])
        if len(tensors) == count:
            break
    if not tensors:
        raise UsageError(f"no readable calibration images among {len(images)} files"
                         + (f" in {images[0].parent}" if images else "") + "; point --data at a COCO-format folder")
    return tensors


def _flavour_options(flavour: str) -> dict:
    if flavour == "tensorrt":
        return {"activation_type": QuantType.QInt8, "op_types_to_quantize": [*WEIGHTED_OPS, "Add"],
                "extra_options": {"ActivationSymmetric": True, "WeightSymmetric": True}}
    return {"activation_type": QuantType.QUInt8}


def quantize_qdq(model: bytes, calibration: Iterable[np.ndarray], *, method: str = "minmax",
                 nodes_to_exclude: list[str] | None = None, outputs_fp32: bool = True, flavour: str = "cpu") -> bytes:
    """INT8 QDQ model bytes in ``flavour`` (see the module), calibrated with ``method`` on ``calibration`` input
    batches. With ``outputs_fp32`` the nodes that write the graph's outputs stay FP32: one quantization scale over
    an output that concatenates pixel boxes and probabilities, as SSDlite's does (boxes -98..422 px, 2 px per step),
    rounds every probability to 0. A backbone part timed for a LUT quantizes them too, as they are inside a whole
    detector."""
    if method not in METHODS:
        raise UsageError(f"--method {method}: use one of {', '.join(METHODS)}")
    if flavour not in FLAVOURS:
        raise UsageError(f"INT8 flavour {flavour!r}: use one of {', '.join(FLAVOURS)}")
    proto = onnx.load_from_string(model)
    input_name = proto.graph.input[0].name
    outputs = {output.name for output in proto.graph.output}
    output_nodes = [node.name for node in proto.graph.node if outputs & set(node.output)] if outputs_fp32 else []
    nodes_to_exclude = [*(nodes_to_exclude or []), *output_nodes]
    with _quiet(), tempfile.TemporaryDirectory(prefix="edgedet-quant-") as tmp:
        out = Path(tmp) / "int8.onnx"
        quantize_static(proto, out, _Batches(input_name, calibration), quant_format=QuantFormat.QDQ,
                        weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=nodes_to_exclude,
                        calibrate_method=METHODS[method], **_flavour_options(flavour))
        quantized = out.read_bytes()
    return without_weighted_outputs_qdq(quantized) if flavour == "tensorrt" else quantized


def without_weighted_outputs_qdq(model: bytes) -> bytes:
    """The model without the Q/DQ pairs on weighted ops' outputs that no weighted op reads (a conv's output into
    its activation, its residual Add or the head's outputs): TensorRT fuses those ops into the conv's INT8 kernel,
    and a Q/DQ between them would split the fusion."""
    proto = onnx.load_from_string(model)
    graph = proto.graph
    producers = {out: node for node in graph.node for out in node.output}
    readers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            readers[name].append(node)
    graph_outputs = {output.name for output in graph.output}
    for quantize in [n for n in graph.node if n.op_type == "QuantizeLinear"]:
        source = quantize.input[0]
        dequantizes = readers[quantize.output[0]]
        dequantized = {d.output[0] for d in dequantizes}
        downstream = [r for name in dequantized for r in readers[name]]
        if (source not in producers or producers[source].op_type not in WEIGHTED_OPS or dequantized & graph_outputs
                or any(d.op_type != "DequantizeLinear" for d in dequantizes)
                or any(r.op_type in WEIGHTED_OPS for r in downstream)):
            continue
        for reader in downstream:
            reader.input[:] = [source if name in dequantized else name for name in reader.input]
        for node in (quantize, *dequantizes):
            graph.node.remove(node)
    return proto.SerializeToString()


def quantized_boundaries(model: bytes) -> bytes:
    """A QDQ model that takes and returns uint8 activations: its input's QuantizeLinear and its output's
    DequantizeLinear removed. Inside a quantized network a block's neighbours hand it int8 directly, so a block
    timed alone for a LUT must not pay the float conversions at its edges."""
    proto = onnx.load_from_string(model)
    graph = proto.graph
    edges = ((graph.input, "QuantizeLinear", lambda node: node.input[0], lambda node: node.output[0]),
             (graph.output, "DequantizeLinear", lambda node: node.output[0], lambda node: node.input[0]))
    for values, op_type, outer, inner in edges:  # the tensor the node shares with the graph edge, and its other one
        for value in values:
            node = next((n for n in graph.node if n.op_type == op_type and outer(n) == value.name), None)
            if node is not None:
                graph.node.remove(node)
                value.name = inner(node)
                value.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    return proto.SerializeToString()


def preprocess_for_quantization(model: bytes) -> bytes:
    """``quant_pre_process`` (shape inference + graph optimisation) where it succeeds, else the model as it is."""
    with _quiet(), tempfile.TemporaryDirectory(prefix="edgedet-prep-") as tmp:
        source, target = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        source.write_bytes(model)
        try:
            quant_pre_process(str(source), str(target))
            return target.read_bytes()
        except Exception as err:  # an optional step: say so, go on with the plain model
            stderr.print(f"note: quant_pre_process skipped ({type(err).__name__}); quantizing the model as exported")
            return model


def node_sensitivity(fp32: bytes, int8: bytes, calibration: list[np.ndarray]) -> list[list[str]]:
    """Groups of FP32-graph nodes to keep unquantized, worst-quantizing output first (lowest SQNR of the QDQ on
    it). An activation (ReLU6 = Clip) is grouped with the conv it follows, whose output QDQ it carries."""
    proto = onnx.load_from_string(fp32)
    input_name = proto.graph.input[0].name
    producers = {out: node for node in proto.graph.node for out in node.output}
    with _quiet(), tempfile.TemporaryDirectory(prefix="edgedet-sens-") as tmp:
        paths = {}
        for key, model in (("fp32", fp32), ("int8", int8)):
            (Path(tmp) / f"{key}.onnx").write_bytes(model)
            paths[key] = Path(tmp) / f"{key}.aug.onnx"
            modify_model_output_intermediate_tensors(Path(tmp) / f"{key}.onnx", paths[key])
        float_acts = collect_activations(str(paths["fp32"]), _Batches(input_name, calibration))
        qdq_acts = collect_activations(str(paths["int8"]), _Batches(input_name, calibration))
    errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    ranked = sorted((float(err["qdq_err"]), name) for name, err in errors.items()
                    if name in producers and np.isfinite(err.get("qdq_err", np.nan)))
    groups = []
    for _, tensor in ranked:
        node = producers[tensor]
        group = [node.name]
        if node.op_type in ACTIVATIONS and node.input[0] in producers:
            group.insert(0, producers[node.input[0]].name)
        groups.append(group)
    return groups


@dataclass
class QuantizeResult:
    model: bytes
    fp32_ap: float  # on the images the guard chose on
    int8_ap: float
    kept_fp32: list[str] = field(default_factory=list)  # nodes left unquantized by the accuracy guard
    trials: list[dict] = field(default_factory=list)  # every (nodes kept, AP) the guard tried
    max_ap_drop: float = 1.0
    val_fp32_ap: float = float("nan")  # on val, which no choice saw (set by edgedet.deploy.quantize_model)
    val_int8_ap: float = float("nan")

    @property
    def ap_drop(self) -> float:
        return self.fp32_ap - self.int8_ap

    @property
    def within_budget(self) -> bool:
        return self.ap_drop <= self.max_ap_drop


def quantize_guarded(fp32: bytes, calibration: list[np.ndarray], evaluate: Callable[[bytes], float], *,
                     max_ap_drop: float = 1.0, method: str = "minmax", max_kept: int = 32,
                     flavour: str = "cpu") -> QuantizeResult:
    """Quantize; if AP drops by more than ``max_ap_drop``, keep the most sensitive nodes in FP32 (1, 2, 4, ...
    up to ``max_kept`` outputs) until it does not. Returns the first model within budget, else the one with the best AP."""
    model = preprocess_for_quantization(fp32)
    fp32_ap = evaluate(model)
    int8 = quantize_qdq(model, calibration, method=method, flavour=flavour)
    best = QuantizeResult(int8, fp32_ap, evaluate(int8), max_ap_drop=max_ap_drop)
    best.trials.append({"kept_fp32": 0, "AP": best.int8_ap})
    stderr.print(f"FP32 AP {fp32_ap:.2f}, INT8 AP {best.int8_ap:.2f} (drop {best.ap_drop:.2f}, budget {max_ap_drop:g})")
    if best.ap_drop <= max_ap_drop:
        return best
    ranked = node_sensitivity(model, int8, calibration[:SENSITIVITY_IMAGES])
    count = 1
    while count <= min(max_kept, len(ranked)):
        kept = [name for group in ranked[:count] for name in group]
        candidate = quantize_qdq(model, calibration, method=method, nodes_to_exclude=kept, flavour=flavour)
        ap = evaluate(candidate)
        stderr.print(f"keeping the {count} most sensitive output(s) in FP32: INT8 AP {ap:.2f} "
                     f"(drop {fp32_ap - ap:.2f})")
        best.trials.append({"kept_fp32": count, "AP": ap})
        if ap > best.int8_ap or fp32_ap - ap <= max_ap_drop:
            best = QuantizeResult(candidate, fp32_ap, ap, kept, best.trials, max_ap_drop)
        if best.ap_drop <= max_ap_drop:
            break
        count *= 2
    return best

"""ONNX Runtime sessions configured the one way edgedet deploys and measures them, on the execution provider the
user picks (``auto``: the best this ONNX Runtime build has). Torch-free."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgedet.errors import UsageError

PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
             "openvino": "OpenVINOExecutionProvider", "coreml": "CoreMLExecutionProvider",
             "cpu": "CPUExecutionProvider"}
PROVIDER_NAMES = ("auto", *PROVIDERS)  # auto takes the first of PROVIDERS this build has: fastest first

Providers = list[str | tuple[str, dict[str, Any]]]  # what ort.InferenceSession takes


def available_providers() -> list[str]:
    """edgedet's names of the providers this ONNX Runtime build has, in ``auto``'s order."""
    present = set(ort.get_available_providers())
    return [name for name, provider in PROVIDERS.items() if provider in present]


TENSORRT_SWITCHES = {"fp16": "trt_fp16_enable", "int8": "trt_int8_enable"}


def tensorrt_options(switches: str | None) -> dict[str, Any]:
    """``"fp16,int8,cache=DIR"`` -> the TensorRT provider's options: FP16 / INT8 engines (an INT8 QDQ model needs
    int8), built engines kept in DIR (a first build takes minutes on a Jetson)."""
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in (switches or "").split(","))):
        key, _, value = item.partition("=")
        if key in TENSORRT_SWITCHES and not value:
            options[TENSORRT_SWITCHES[key]] = True
        elif key == "cache" and value:
            options |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(Path(value))}
        else:
            raise UsageError(f"--trt {switches}: '{item}' is not a switch; use fp16, int8 and cache=DIR, "
                             "comma-separated")
    return options


def choose_providers(name: str = "auto", trt: str | None = None) -> tuple[str, Providers]:
    """(the provider chosen, the list ONNX Runtime takes: it first, with its options, then the CPU for any op it
    lacks). ``trt``: the TensorRT switches (``tensorrt_options``)."""
    if name not in PROVIDER_NAMES:
        raise UsageError(f"--provider {name}: use one of {', '.join(PROVIDER_NAMES)}")
    options = tensorrt_options(trt)
    available = available_providers()
    chosen = available[0] if name == "auto" else name
    if chosen not in available:
        raise UsageError(f"--provider {name}: this ONNX Runtime ({ort.__version__}) has only "
                         f"{', '.join(available)}; install the build that has it (onnxruntime-gpu for cuda and "
                         "tensorrt, onnxruntime-openvino, ...) or pick one of those")
    if options and chosen != "tensorrt":
        raise UsageError(f"--trt {trt}: TensorRT's switches, but the provider is {chosen}; add --provider tensorrt "
                         "or drop --trt")
    first = (PROVIDERS[chosen], options) if options else PROVIDERS[chosen]
    return chosen, [first] + ([] if chosen == "cpu" else [PROVIDERS["cpu"]])


def make_session(model: bytes | str, *, threads: int = 1, providers: Providers | None = None) -> ort.InferenceSession:
    """A session set up as edgedet deploys: full graph optimisation, fixed threads, no busy-wait spinning; on
    ``providers`` (from ``choose_providers``; the CPU when None)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads > 1:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=providers or [PROVIDERS["cpu"]])


def random_feed(session: ort.InferenceSession, seed: int = 0) -> dict[str, np.ndarray]:
    """One random input per graph input, with the graph's static shape: uint8 where the graph takes quantized
    activations (a block timed for an INT8 LUT), float32 otherwise."""
    rng = np.random.default_rng(seed)
    feed = {}
    for graph_input in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in graph_input.shape]
        feed[graph_input.name] = (rng.integers(0, 256, shape, dtype=np.uint8) if graph_input.type == "tensor(uint8)"
                                  else rng.standard_normal(shape).astype(np.float32))
    return feed

"""ONNX Runtime sessions configured the one way edgedet deploys and measures them. Torch-free."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort


def make_session(model: bytes | str, *, threads: int = 1, providers: list[str] | None = None) -> ort.InferenceSession:
    """A session set up as edgedet deploys: full graph optimisation, fixed threads, no busy-wait spinning."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads > 1:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    available = ort.get_available_providers()
    chosen = [p for p in (providers or ["CPUExecutionProvider"]) if p in available] or ["CPUExecutionProvider"]
    return ort.InferenceSession(model, options, providers=chosen)


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

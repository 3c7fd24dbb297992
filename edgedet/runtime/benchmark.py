"""On-device latency of ONNX models, several in one run: interleaved bursts, so drift hits every model alike.

For detectors (edgedet exports with a ``model.json`` sidecar, and other projects' models an adapter of
``edgedet.runtime.peers`` reads, ``PATH.onnx:ADAPTER`` naming one) the pre-processing and the decode + NMS are
timed apart from the network, on real images, and the network runs as the detector runs it (YOLOX-Nano at 640). A
bare graph no adapter knows is timed on a random input of its own input shape. Torch-free.
"""

from __future__ import annotations

import random
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgedet.runtime.onnx_detector import OnnxDetector, open_session
from edgedet.runtime.peers import PeerDetector, is_detector, load_teacher, split_spec
from edgedet.runtime.preprocess import read_bgr
from edgedet.runtime.session import Providers, random_feed

BURST = 5  # runs of one model before the next model's turn


@dataclass
class BenchRow:
    model: str
    threads: int
    precision: str
    size_mb: float
    median_ms: float
    p90_ms: float
    p99_ms: float
    throughput_fps: float  # of the network alone, batch 1
    pre_ms: float | None  # pre-processing (detectors only)
    post_ms: float | None  # decode + NMS
    memory_mb: float  # resident memory the session added when loaded and first run
    arch: str | None = None

    @property
    def end_to_end_ms(self) -> float | None:
        return None if self.pre_ms is None else self.pre_ms + self.median_ms + self.post_ms


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Subject:
    """One model under test: its session, input, and (for detectors) the detector for pre/post timing."""

    def __init__(self, spec: str | Path, threads: int, conf: float, providers: Providers | None) -> None:
        before = _rss_mb()
        self.name, (self.path, _) = str(spec), split_spec(spec)
        self.detector = (load_teacher(spec, threads=threads, conf=conf, providers=providers) if is_detector(spec)
                         else None)
        self.session: ort.InferenceSession = (self.detector.session if self.detector
                                              else open_session(self.path, threads=threads, providers=providers))
        self.feed = random_feed(self.session)
        self.session.run(None, self.feed)
        self.memory_mb = _rss_mb() - before
        self.times: list[float] = []

    def burst(self, runs: int) -> None:
        for _ in range(runs):
            start = time.perf_counter()
            self.session.run(None, self.feed)
            self.times.append(time.perf_counter() - start)


def _pre_post_ms(detector: OnnxDetector | PeerDetector, images: list[np.ndarray]) -> tuple[float, float]:
    """Median letterbox and decode + NMS times over ``images`` (each decoded from its real network output)."""
    pre, post = [], []
    for image in images:
        start = time.perf_counter()
        tensor, scale = detector.preprocess(image)
        pre.append(time.perf_counter() - start)
        raw = detector.infer(tensor)
        start = time.perf_counter()
        detector.postprocess(raw, scale, image.shape[:2])
        post.append(time.perf_counter() - start)
    return float(np.median(pre)) * 1e3, float(np.median(post)) * 1e3


def read_images(paths: list[Path], count: int) -> list[np.ndarray]:
    """Up to ``count`` readable images among the first ``2 * count`` paths."""
    images = [read_bgr(p) for p in paths[: count * 2]]
    return [image for image in images if image is not None][:count]


def benchmark_models(models: list[str | Path], *, threads: int = 1, runs: int = 100, warmup: int = 10,
                     images: list[np.ndarray] | None = None, conf: float = 0.05, seed: int = 0,
                     providers: Providers | None = None) -> list[BenchRow]:
    """Time every model ``runs`` times in shuffled interleaved bursts; pre/post on ``images`` where it applies
    (decoding at score threshold ``conf``: fewer candidates make NMS cheaper)."""
    subjects = [_Subject(path, threads, conf, providers) for path in models]
    for subject in subjects:
        subject.burst(warmup)
        subject.times.clear()
    order, shuffler = list(subjects), random.Random(seed)
    for _ in range(-(-runs // BURST)):
        shuffler.shuffle(order)
        for subject in order:
            subject.burst(BURST)
    rows = []
    for subject in subjects:
        times = np.array(subject.times[:runs]) * 1e3
        pre = post = None
        if subject.detector is not None and images:
            pre, post = _pre_post_ms(subject.detector, images)
        card = subject.detector.card if isinstance(subject.detector, OnnxDetector) else None
        median = float(np.median(times))
        rows.append(BenchRow(
            model=subject.name, threads=threads, precision=card.precision if card else _guess_precision(subject),
            size_mb=subject.path.stat().st_size / 2**20, median_ms=median,
            p90_ms=float(np.percentile(times, 90)), p99_ms=float(np.percentile(times, 99)),
            throughput_fps=1000 / median, pre_ms=pre, post_ms=post, memory_mb=subject.memory_mb,
            arch=card.arch if card else None))
    return rows


def _guess_precision(subject: _Subject) -> str:
    """Peers: int8 when the graph carries QuantizeLinear nodes, else fp32 (what ONNX Runtime will run)."""
    import onnx

    graph = onnx.load(str(subject.path), load_external_data=False).graph
    return "int8" if any(node.op_type in ("QuantizeLinear", "QLinearConv") for node in graph.node) else "fp32"

"""Measure a device's latency LUT on the machine this runs on, in the runtime edgedet deploys with.

Protocol ("interleaved-reference"): every distinct (layer shape, op) of the space, and the stem, is exported as a
one-block ONNX model and timed in ONNX Runtime in alternating bursts with a fixed reference model (the space's
default backbone); latency = median ratio to the reference x the reference's median ms. For ``--precision int8``
the block is QDQ INT8 with every node quantized and takes and returns uint8, as inside a whole quantized network
(version 2; version 1 kept a block's last node in FP32 and paid float conversions at both edges, which overcharged
the wide early blocks; benchmarks/README compares the two). A few whole random backbones are timed the same way to
fit the per-model constant (session call and I/O costs that one-block models pay once each but a whole model pays
once).
"""

from __future__ import annotations

import datetime
import platform
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from edgedet.devices.latency import LatencyLUT, layer_key, overhead_key, predict_ms, stem_key
from edgedet.devices.profile import BUILT_DIR, DeviceProfile, get_profile, load_profile
from edgedet.devices.timing import Timed, time_interleaved
from edgedet.errors import UsageError
from edgedet.export.onnx_export import export_onnx
from edgedet.export.quantize import quantize_qdq, quantized_boundaries
from edgedet.io import atomic_write_json, atomic_write_text
from edgedet.progress import progress_steps, progress_track, stderr
from edgedet.runtime.session import PROVIDERS, Providers, choose_providers, make_session
from edgedet.space.archspec import ArchSpec, sample_arch
from edgedet.space.backbone import Backbone
from edgedet.space.blocks import make_op, make_stem
from edgedet.space.spaces import SearchSpace, get_space

PROTOCOL = "interleaved-reference/2"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def runtime_id(threads: int, provider: str = "cpu") -> str:
    """The key a LUT's entries sit under: the same block times differently on another provider or thread count."""
    return f"ort-{provider}-t{threads}"


def _randomize_batchnorm(module: nn.Module) -> None:
    """Trained-looking BN statistics, so folded biases are distinct tensors as in a real model."""
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            nn.init.uniform_(bn.weight, 0.5, 1.5)
            nn.init.normal_(bn.bias, 0.0, 0.1)
            bn.running_mean.normal_(0.0, 0.1)
            bn.running_var.uniform_(0.5, 1.5)


def onnx_model(module: nn.Module, shape: tuple[int, ...], precision: str, seed: int = 0, *,
               part: bool = False) -> bytes:
    """One ONNX model for timing: FP32 as exported, or INT8 QDQ calibrated on a few random batches, every node
    quantized as inside a whole detector. A ``part`` (one block of a backbone) takes and returns uint8 in INT8."""
    torch.manual_seed(seed)
    _randomize_batchnorm(module)
    example = torch.randn(shape)
    model = export_onnx(module, example)
    if precision == "int8":
        rng = np.random.default_rng(seed)
        model = quantize_qdq(model, (rng.standard_normal(shape).astype(np.float32) for _ in range(4)),
                             outputs_fp32=False)
        if part:
            model = quantized_boundaries(model)
    return model


def backbone_model(arch: ArchSpec, precision: str) -> bytes:
    return onnx_model(Backbone(arch), (1, 3, arch.imgsz, arch.imgsz), precision)


def timed(models: Iterable[tuple[str, bytes]], threads: int, providers: Providers | None = None
          ) -> dict[str, Timed]:
    return {key: Timed(make_session(model, threads=threads, providers=providers)) for key, model in models}


def measure_backbones(archs: dict[str, ArchSpec], precision: str, *, threads: int = 1, rounds: int = 5
                      ) -> dict[str, float]:
    """Each backbone's latency here (ms, ONNX Runtime), timed in bursts alternating with the space's reference
    backbone so that the machine's drift cancels out of the comparison."""
    first = next(iter(archs.values()))
    reference = timed([("ref", backbone_model(ArchSpec.default(first.space, first.imgsz), precision))], threads)
    sessions = timed([(key, backbone_model(arch, precision)) for key, arch in archs.items()], threads)
    result = time_interleaved(sessions, reference["ref"], rounds=rounds)
    return {key: result.ms(key) for key in archs}


@dataclass
class BuildSettings:
    name: str
    space: SearchSpace
    imgsz: int
    precision: str = "fp32"
    threads: int = 1
    rounds: int = 15
    calibration_archs: int = 6
    seed: int = 0
    provider: str = "cpu"  # the ONNX Runtime execution provider that will run the model on the device
    trt: str | None = None  # its TensorRT switches (edgedet.runtime.session.tensorrt_options)


def _block_models(settings: BuildSettings, runtime: str) -> list[tuple[str, bytes]]:
    space, imgsz, precision = settings.space, settings.imgsz, settings.precision
    wanted: dict[str, tuple[nn.Module, tuple[int, ...]]] = {
        stem_key(space, imgsz, precision, runtime): (make_stem(space.stem_out, space.act), (1, 3, imgsz, imgsz))
    }
    for layer in space.layers(imgsz):
        for op in space.allowed_ops(layer):
            module = make_op(op, in_ch=layer.cin, out_ch=layer.cout, stride=layer.stride, act=space.act)
            wanted.setdefault(layer_key(op, layer, precision, runtime),
                              (module, (1, layer.cin, layer.height, layer.width)))
    return [(key, onnx_model(module, shape, precision, part=True))
            for key, (module, shape) in progress_track(wanted.items(), f"exporting {len(wanted)} blocks")]


def build_lut(settings: BuildSettings, out_dir: Path) -> DeviceProfile:
    """Measure and write ``<out_dir>/profile.yaml`` + ``<name>.<precision>.json`` (merged into an existing LUT)."""
    runtime = runtime_id(settings.threads, settings.provider)
    _, providers = choose_providers(settings.provider, settings.trt)
    space, imgsz, precision = settings.space, settings.imgsz, settings.precision
    lut_path = out_dir / f"{settings.name}.{precision}.json"
    lut = LatencyLUT.load(lut_path) if lut_path.exists() else LatencyLUT(settings.name, precision, runtime)
    if lut.runtime != runtime:  # its entries would sit under a runtime the profile never reads
        raise UsageError(f"{lut_path} was measured with runtime {lut.runtime}, not {runtime} (--threads "
                         f"{settings.threads}): build into another --name, or delete that file to start afresh")
    started = datetime.datetime.now(datetime.timezone.utc)
    reference = ArchSpec(space.name, imgsz, space.default_ops, space.width_mult)
    rng = random.Random(settings.seed)
    calibration = [sample_arch(space, imgsz, rng) for _ in range(settings.calibration_archs)]
    blocks = _block_models(settings, runtime)
    wholes = [(f"arch {arch}", backbone_model(arch, precision))
              for arch in progress_track(calibration, "exporting calibration backbones")]
    items = timed(blocks + wholes, settings.threads, providers)
    ref = Timed(make_session(backbone_model(reference, precision), threads=settings.threads, providers=providers))
    with progress_steps(f"timing {len(items)} models x {settings.rounds} rounds", settings.rounds) as advance_to:
        result = time_interleaved(items, ref, rounds=settings.rounds, seed=settings.seed, on_round=advance_to)

    lut.entries.update({key: round(result.ms(key), 5) for key, _ in blocks})
    offset_key = overhead_key(space, imgsz, precision, runtime)
    lut.entries[offset_key] = 0.0
    residuals = [result.ms(f"arch {arch}") - predict_ms(lut, arch) for arch in calibration]
    residuals.append(result.reference_ms - predict_ms(lut, reference))
    lut.entries[offset_key] = round(float(np.median(residuals)), 5)
    lut.reference[f"{space.name}@{imgsz}"] = {"arch": str(reference), "ms": round(result.reference_ms, 4)}
    lut.provenance = {
        "date": started.isoformat(timespec="seconds"),
        "onnxruntime": ort.__version__,
        "cpu": cpu_name(),
        "threads": settings.threads,
        "provider": settings.provider,
        "protocol": PROTOCOL,
        "rounds": settings.rounds,
        "calibration_archs": settings.calibration_archs,
        "seconds": round((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(), 1),
    }
    atomic_write_json(lut_path, lut.to_json())
    return _write_profile(settings, out_dir, lut_path.name)


def _write_profile(settings: BuildSettings, out_dir: Path, lut_file: str) -> DeviceProfile:
    path = out_dir / "profile.yaml"
    if path.exists():
        profile = load_profile(path)
        profile.latency["luts"][settings.precision] = lut_file
    else:
        profile = DeviceProfile(
            id=settings.name,
            description=f"measured on this machine ({cpu_name()}), ONNX Runtime {settings.provider}, "
                        f"{settings.threads} thread(s)",
            runtime={"engine": "onnxruntime", "threads": settings.threads,
                     "providers": list(dict.fromkeys([PROVIDERS[settings.provider], PROVIDERS["cpu"]])),
                     "precision": settings.precision, **({"trt": settings.trt} if settings.trt else {})},
            latency={"source": "lut", "luts": {settings.precision: lut_file},
                     "expected_error": f"unchecked: `edgedet profile check {settings.name}` measures it",
                     "provenance": f"measured by `edgedet profile build` ({PROTOCOL}); details in each LUT"},
            hardware={"cpu": cpu_name(), "machine": platform.machine(), "python": platform.python_version()},
            path=path,
        )
    atomic_write_text(path, profile.to_yaml())
    profile.path = path
    return profile


def _covers(profile: DeviceProfile, space: SearchSpace, imgsz: int, precision: str) -> bool:
    """Whether the profile's LUT was built for this space and input size (its fitted overhead is there)."""
    lut = profile.latency_model(precision)
    return isinstance(lut, LatencyLUT) and overhead_key(space, imgsz, precision, lut.runtime) in lut.entries


def get_or_build_profile(device: str, space: SearchSpace | None = None, imgsz: int = 320,
                         precision: str | None = None) -> DeviceProfile:
    """Resolve a profile; ``host`` is measured here, for the space (lite0 by default), input size and precision
    (fp32 by default) in use, the first time its LUT lacks them."""
    if device != "host":
        return get_profile(device)
    space, precision = space or get_space("lite0"), precision or "fp32"
    if (BUILT_DIR / "host" / "profile.yaml").exists():
        profile = get_profile(device)
        if precision in profile.precisions and _covers(profile, space, imgsz, precision):
            return profile
    stderr.print(f"measuring this machine's LUT for 'host' ({space.name}@{imgsz}, {precision}): a few minutes, once")
    return build_lut(BuildSettings("host", space, imgsz, precision), BUILT_DIR / "host")

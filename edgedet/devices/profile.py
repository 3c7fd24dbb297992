"""Device profiles: ``device_profiles/<id>.yaml`` says what a device is, how we run on it, and where its latencies
come from.

Schema (every field is checked on load; errors name the file and the field)::

    id: jetson-orin-nano
    aliases: [jetson]
    description: one line for `profile list`
    hardware: {free-form published facts: cores, clocks, peak GFLOP/s, memory bandwidth...}
    runtime:
      engine: onnxruntime
      providers: [TensorrtExecutionProvider, CUDAExecutionProvider, CPUExecutionProvider]
      threads: 1
      precision: fp32            # default precision: fp32 | fp16 | int8
    latency:
      source: lut                # lut: measured tables beside this file; analytic: roofline model parameters
      luts: {fp32: host.fp32.json, int8: host.int8.json}
      analytic: {fp32: {...}, int8: {...}}           # see edgedet.devices.analytic
      expected_error: honest words on how far to trust the numbers
      provenance: where the numbers come from

Profiles are looked up first among the ones built on this machine (``runs/profile/<id>/profile.yaml``, written by
``edgedet profile build``), then among the shipped ones (``device_profiles/``, or ``$EDGEDET_PROFILES``).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgedet.devices.latency import LatencyLUT, LatencyModel
from edgedet.errors import UsageError

PRECISIONS = ("fp32", "fp16", "int8")
SOURCES = ("lut", "analytic")
_PACKAGED_DIR = Path(__file__).resolve().parents[1] / "device_profiles"  # where a wheel installs them (setup.py)
SHIPPED_DIR = _PACKAGED_DIR if _PACKAGED_DIR.is_dir() else Path(__file__).resolve().parents[2] / "device_profiles"
BUILT_DIR = Path("runs") / "profile"


@dataclass
class DeviceProfile:
    id: str
    description: str
    runtime: dict[str, Any]
    latency: dict[str, Any]
    aliases: list[str] = field(default_factory=list)
    hardware: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def precision(self) -> str:
        return self.runtime.get("precision", "fp32")

    @property
    def threads(self) -> int:
        return int(self.runtime.get("threads", 1))

    @property
    def precisions(self) -> list[str]:
        return list(self.latency.get("luts" if self.latency["source"] == "lut" else "analytic", {}))

    def latency_model(self, precision: str | None = None) -> LatencyModel:
        """The LUT or analytic model for ``precision`` (the profile's own by default)."""
        precision = precision or self.precision
        if precision not in self.precisions:
            raise UsageError(
                f"device '{self.id}' has no {precision} latencies (it has: {', '.join(self.precisions) or 'none'})"
                + (f"; build them with `edgedet profile build --name {self.id} --precision {precision}`"
                   if self.latency["source"] == "lut" else "")
            )
        if self.latency["source"] == "lut":
            base = self.path.parent if self.path else Path(".")
            return LatencyLUT.load(base / self.latency["luts"][precision])
        from edgedet.devices.analytic import AnalyticModel

        return AnalyticModel.from_config(self.latency["analytic"][precision], precision=precision,
                                         where=f"{self.path}: latency.analytic.{precision}")

    @property
    def int8_flavour(self) -> str:
        """The INT8 model its runtime runs as INT8: ``tensorrt`` (symmetric, zero points 0) or ``cpu`` (U8/S8)."""
        return "tensorrt" if "TensorrtExecutionProvider" in self.runtime.get("providers", []) else "cpu"

    def int8_warning(self) -> str | None:
        """Why an INT8 QDQ model might not run as INT8 on this device's runtime, or None."""
        providers = self.runtime.get("providers", [])
        if "CUDAExecutionProvider" in providers and "TensorrtExecutionProvider" not in providers:
            return (f"{self.id}: ONNX Runtime's CUDA provider has no INT8 convolutions; this QDQ model would run "
                    "dequantized (FP32) or on the CPU. Use the TensorRT provider with trt_int8_enable")
        if "TensorrtExecutionProvider" in providers:
            return (f"{self.id}: INT8 runs on the GPU only through the TensorRT provider (trt_int8_enable=True, "
                    "QDQ model as written here); without TensorRT the CUDA provider falls back to "
                    "dequantized FP32 or the CPU")
        if "int8" not in self.precisions:
            return f"{self.id}: the profile has no INT8 latencies, so the search did not optimise for INT8"
        return None

    def to_yaml(self) -> str:
        data = {"id": self.id, "aliases": self.aliases, "description": self.description, "hardware": self.hardware,
                "runtime": self.runtime, "latency": self.latency}
        return yaml.safe_dump(data, sort_keys=False)


def _require(data: dict[str, Any], name: str, kind: type, path: Path) -> Any:
    if name not in data:
        raise UsageError(f"{path}: missing field '{name}'")
    if not isinstance(data[name], kind):
        raise UsageError(f"{path}: field '{name}' must be a {kind.__name__}, got {type(data[name]).__name__}")
    return data[name]


def load_profile(path: Path) -> DeviceProfile:
    """Read and check one profile YAML."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UsageError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping with id, description, runtime and latency")
    runtime = _require(data, "runtime", dict, path)
    latency = _require(data, "latency", dict, path)
    if runtime.get("precision", "fp32") not in PRECISIONS:
        raise UsageError(f"{path}: field 'runtime.precision' must be one of {', '.join(PRECISIONS)}")
    if latency.get("source") not in SOURCES:
        raise UsageError(f"{path}: field 'latency.source' must be one of {', '.join(SOURCES)}")
    tables = latency.get("luts" if latency["source"] == "lut" else "analytic")
    if not isinstance(tables, dict) or not tables or any(p not in PRECISIONS for p in tables):
        key = "luts" if latency["source"] == "lut" else "analytic"
        raise UsageError(f"{path}: field 'latency.{key}' must map precisions ({', '.join(PRECISIONS)}) to entries")
    aliases = data.get("aliases") or []
    if not isinstance(aliases, list):
        raise UsageError(f"{path}: field 'aliases' must be a list")
    return DeviceProfile(str(_require(data, "id", str, path)), str(data.get("description", "")), runtime, latency,
                         [str(a) for a in aliases], dict(data.get("hardware") or {}), path)


def profile_dirs() -> list[Path]:
    shipped = Path(os.environ.get("EDGEDET_PROFILES", SHIPPED_DIR))
    return [BUILT_DIR, shipped]


def _profile_name(path: Path) -> str:
    """The name a profile file goes by before it is read: its folder's (``NAME/profile.yaml``) or its stem."""
    return path.parent.name if path.name == "profile.yaml" else path.stem


def _load_all() -> dict[Path, DeviceProfile | UsageError]:
    """Every profile file, shipped ones first (built ones shadow them), read once: the profile, or why not."""
    loaded: dict[Path, DeviceProfile | UsageError] = {}
    for directory in reversed(profile_dirs()):
        for path in sorted(directory.glob("*/profile.yaml")) + sorted(directory.glob("*.yaml")):
            try:
                loaded[path] = load_profile(path)
            except UsageError as err:
                loaded[path] = err
    return loaded


def _by_name(loaded: dict[Path, DeviceProfile | UsageError]) -> dict[str, Path]:
    """Every known id and alias -> its YAML; built profiles shadow shipped ones of the same id. A file that does not
    load is known by its folder or file name only, so that its error shows when asked for, not for every device."""
    found: dict[str, Path] = {}
    for path, profile in loaded.items():
        names = [profile.id, *profile.aliases] if isinstance(profile, DeviceProfile) else [_profile_name(path)]
        found |= dict.fromkeys(names, path)
    return found


def list_profiles() -> list[DeviceProfile]:
    """Every profile that loads and is not shadowed (a broken one says why when asked for by name)."""
    loaded = _load_all()
    shown = [loaded[path] for path in set(_by_name(loaded).values())]
    return sorted((p for p in shown if isinstance(p, DeviceProfile)), key=lambda p: p.id)


def get_profile(device: str) -> DeviceProfile:
    """Resolve an id or alias; unknown ids fail with the known ones and the closest matches."""
    loaded = _load_all()
    known = _by_name(loaded)
    if device in known:
        profile = loaded[known[device]]
        if isinstance(profile, UsageError):
            raise profile
        return profile
    close = difflib.get_close_matches(device, known, n=3)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    build = " Build this machine's with `edgedet profile build --name host`." if device == "host" else ""
    raise UsageError(f"unknown device '{device}'.{hint}{build} Known: {', '.join(sorted(known))}")

"""``edgedet pipeline``: profile -> search -> train (+ baselines) -> export -> quantize -> evaluate -> benchmark
-> report, in ``runs/pipeline/<name>/``, with a manifest so that a re-run skips what is done and resumes the rest.

A stage is skipped when the manifest says it finished with the same settings and its outputs still exist; a stage
whose settings changed runs again, and so does every stage after it. Search and training resume from their
``last.pt`` when interrupted. Presets size the run: ``full`` (your data), ``synthetic`` (no ``--data``: the
embedded set, under 15 minutes on 2 cores) and ``fast`` (a few minutes); ``--set stage.key=value`` overrides any
stage setting.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from edgedet.errors import UsageError
from edgedet.io import atomic_write_json
from edgedet.progress import stderr
from edgedet.reuse import settings_digest
from edgedet.settings import parse_set_items

MANIFEST = "manifest.json"
FILE_SUFFIXES = {".json", ".pt", ".onnx", ".md", ".png", ".yaml"}  # outputs that must still exist to skip a stage
STAGES = ("profile", "search", "train", "baselines", "export", "quantize", "evaluate", "benchmark", "report")
class Baseline(NamedTuple):
    """A fixed detector trained with the searched model's recipe."""

    arch: str  # ArchSpec
    head: str = "edgedet"
    scaled: bool = False  # brought to the searched latency by input size, and trained at that size


BASELINES = {
    "lite0": Baseline("lite0"),  # EfficientNet-Lite0's own choices
    "mbv2": Baseline("lite0:" + ",".join(["k3_e1"] + ["k3_e6"] * 15)),  # MobileNetV2's blocks: 3x3, expansion 6
    "ssdlite": Baseline("lite0", "ssdlite"),  # torchvision's SSDlite head on the same pretrained Lite0 backbone
    "lite0-scaled": Baseline("lite0", scaled=True),  # Lite0 at the input size nearest the searched latency
}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {"search": {"epochs": 8, "warmup_epochs": 2, "imgsz": 320},
             "train": {"epochs": 30, "imgsz": 320, "lr": 1e-3},
             "quantize": {"calib_images": 200, "baselines": True}, "benchmark": {"runs": 100},
             "baselines": {"archs": ["lite0", "mbv2", "ssdlite"], "prior_only": True}},
    "synthetic": {"search": {"epochs": 4, "warmup_epochs": 1, "imgsz": 192},
                  "train": {"epochs": 12, "imgsz": 192, "lr": 2e-3},
                  "quantize": {"calib_images": 64}, "benchmark": {"runs": 50}, "baselines": {"archs": []}},
    "fast": {"search": {"epochs": 2, "warmup_epochs": 1, "imgsz": 128},
             "train": {"epochs": 3, "imgsz": 128, "lr": 2e-3},
             "quantize": {"calib_images": 16}, "benchmark": {"runs": 20, "random_archs": 2},
             "baselines": {"archs": []}},
}


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["train.epochs=5", "search.batch=8"]`` -> ``{"train": {"epochs": 5}, "search": {"batch": 8}}`` (values read
    as ``--set`` reads them everywhere: ``parse_set_items``)."""
    for item in items:  # the stage first: a wrong one is named as the user typed it
        stage, dot, setting = item.partition("=")[0].partition(".")
        if "=" not in item or not dot or not setting or stage not in STAGES:
            raise UsageError(f"--set {item}: use STAGE.KEY=VALUE with STAGE one of {', '.join(STAGES)}")
    out: dict[str, dict[str, Any]] = {}
    for key, value in parse_set_items(items).items():
        stage, _, setting = key.partition(".")
        out.setdefault(stage, {})[setting] = value
    return out


@dataclass
class PipelineConfig:
    devices: list[str]
    data: str  # COCO-format folder (the synthetic set when the user gave none)
    preset: str
    target_ms: list[float] = field(default_factory=list)
    classes: list[str] | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    device_type: str = "auto"

    def stage(self, name: str) -> dict[str, Any]:
        """A stage's settings: the preset's, then the user's overrides."""
        return PRESETS[self.preset].get(name, {}) | self.overrides.get(name, {})

    def inputs(self) -> dict[str, Any]:
        """What every stage depends on besides its own settings: a change here redoes the whole pipeline."""
        return {"devices": self.devices, "target_ms": self.target_ms, "data": self.data, "classes": self.classes,
                "device_type": self.device_type}


class Pipeline:
    def __init__(self, config: PipelineConfig, folder: Path) -> None:
        self.config, self.folder = config, folder
        self.path = folder / MANIFEST
        self.manifest: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.manifest.setdefault("format", "edgedet-pipeline/1")
        self.manifest.setdefault("stages", {})
        self.invalidated = False  # once a stage re-runs, every later one does too

    def _save(self) -> None:
        self.manifest["config"] = self.config.__dict__
        atomic_write_json(self.path, self.manifest)

    def run_stage(self, name: str, settings: dict[str, Any], work: Callable[[bool], dict[str, Any]]) -> dict:
        """Run ``work(resume)`` unless the manifest shows it done with these settings and its outputs exist."""
        entry = self.manifest["stages"].get(name, {})
        digest = settings_digest({"inputs": self.config.inputs(), "settings": settings})
        outputs_exist = all(Path(p).exists() for p in entry.get("files", []))
        if not self.invalidated and entry.get("status") == "done" and entry.get("digest") == digest and outputs_exist:
            stderr.print(f"[pipeline] {name}: done before, skipped")
            return entry["outputs"]
        resume = entry.get("status") == "running" and entry.get("digest") == digest and not self.invalidated
        self.invalidated = True
        stderr.print(f"[pipeline] {name}: {'resuming' if resume else 'running'}")
        self.manifest["stages"][name] = {"status": "running", "digest": digest, "settings": settings}
        self._save()
        start = time.perf_counter()
        outputs = work(resume)
        files = [v for v in _flatten(outputs) if isinstance(v, str) and Path(v).suffix in FILE_SUFFIXES]
        self.manifest["stages"][name] = {"status": "done", "digest": digest, "settings": settings,
                                         "outputs": outputs, "files": files,
                                         "seconds": round(time.perf_counter() - start, 1),
                                         "finished": datetime.datetime.now().isoformat(timespec="microseconds")}
        self._save()
        return outputs


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    if isinstance(value, list):
        return [x for v in value for x in _flatten(v)]
    return [value]


def run_pipeline(config: PipelineConfig, folder: Path) -> dict[str, Any]:
    """Every stage in order; returns the manifest (its ``stages`` hold each stage's outputs and timing)."""
    from edgedet.pipeline.stages import STAGE_FUNCTIONS

    pipeline = Pipeline(config, folder)
    context: dict[str, Any] = {}
    for name in STAGES:
        context[name] = pipeline.run_stage(name, config.stage(name), lambda resume, n=name: STAGE_FUNCTIONS[n](
            config, folder, context, resume))
    stages = pipeline.manifest["stages"].values()
    pipeline.manifest["total_seconds"] = round(sum(stage.get("seconds", 0) for stage in stages), 1)
    pipeline._save()
    return pipeline.manifest

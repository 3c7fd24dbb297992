"""The pipeline's stages: each takes the pipeline config, the run folder, the earlier stages' outputs and whether
to resume, delegates to the library function that does the work, and returns JSON-ready outputs for the manifest."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from edgedet.data.annotations import find_split
from edgedet.deploy import quantize_model
from edgedet.devices.builder import get_or_build_profile, measure_backbones
from edgedet.devices.latency import layer_table, predict_ms
from edgedet.devices.profile import get_profile
from edgedet.errors import EdgedetError, UsageError
from edgedet.evaluate.images import evaluate_predictor, split_images
from edgedet.export.onnx_export import export_checkpoint
from edgedet.io import atomic_write_json
from edgedet.pipeline.report import write_report
from edgedet.pipeline.run import BASELINES, Baseline, PipelineConfig
from edgedet.progress import stderr
from edgedet.runtime.benchmark import benchmark_models, read_images
from edgedet.runtime.onnx_detector import OnnxDetector
from edgedet.runtime.peers import load_peers
from edgedet.search.derive import prior_only_arch, random_ops_near, resolution_scaled, to_arch
from edgedet.search.loop import SearchConfig, search
from edgedet.space.archspec import ArchSpec, sample_arch
from edgedet.space.spaces import get_space
from edgedet.train.engine import TrainConfig, train

Context = dict[str, Any]


def profile_stage(config: PipelineConfig, folder: Path, context: Context, resume: bool) -> dict[str, Any]:
    """Resolve every device (``host`` is measured here the first time, for the search's space and input size)."""
    search = config.stage("search")
    space, imgsz = get_space(search.get("space", "lite0")), search.get("imgsz", 320)
    profiles = {name: get_or_build_profile(name, space, imgsz) for name in config.devices}
    return {name: {"id": p.id, "path": str(p.path), "precision": p.precision} for name, p in profiles.items()}


def search_stage(config: PipelineConfig, folder: Path, context: Context, resume: bool) -> dict[str, Any]:
    run = folder / "search"
    settings = {"devices": config.devices, "target_ms": config.target_ms, "data": config.data,
                "classes": config.classes, "device": config.device_type} | config.stage("search")
    result = search(SearchConfig.from_dict(settings), run, resume=resume and (run / "last.pt").exists())
    return {"arch": str(result.arch), "arch_json": str(result.path), "devices": result.devices,
            "log": str(run / "log.csv"), "probs_png": str(run / "probs.png")}


def _train_config(config: PipelineConfig, arch: str, head: str = "edgedet", own_imgsz: bool = False) -> TrainConfig:
    """The pipeline's recipe for ``arch``; ``own_imgsz`` keeps the ArchSpec's input size instead of the recipe's."""
    settings = {"arch": arch, "data": config.data, "classes": config.classes, "device": config.device_type,
                **config.stage("train"), "head": head} | ({"imgsz": None} if own_imgsz else {})
    return TrainConfig.from_dict(settings)


def _train(recipe: TrainConfig, run: Path, resume: bool) -> dict[str, Any]:
    """Train ``recipe`` into ``run`` (resumed when asked and a checkpoint is there); where its results are."""
    final = train(recipe, run, resume=resume and (run / "last.pt").exists())
    checkpoint = run / "best.pt" if (run / "best.pt").exists() else run / "last.pt"
    return {"checkpoint": str(checkpoint), "AP": final.get("AP"), "AP50": final.get("AP50"),
            "log": str(run / "log.csv")}


def train_stage(config: PipelineConfig, folder: Path, context: Context, resume: bool) -> dict[str, Any]:
    return _train(_train_config(config, context["search"]["arch_json"]), folder / "train", resume)


def baselines_stage(config: PipelineConfig, folder: Path, context: Context, resume: bool) -> dict[str, Any]:
    """The fixed architectures named in ``baselines.archs``, ``baselines.random`` random ones at the searched
    model's latency (within ``baselines.match_pct`` percent on the first device) and, with ``baselines.prior_only``,
    what the search derives with θ ignored (what θ added), each trained with the searched model's exact recipe."""
    settings = config.stage("baselines")
    models: dict[str, Baseline] = {}
    for name in settings.get("archs", []):
        if name not in BASELINES:
            raise UsageError(f"baseline '{name}': known baselines are {', '.join(BASELINES)}")
        baseline = BASELINES[name]
        spec = ArchSpec.parse(baseline.arch)
        if baseline.scaled:
            device = context["search"]["devices"][0]
            spec = resolution_scaled(spec, get_profile(device["device"]).latency_model(device["precision"]),
                                     device["predicted_ms"])
        models[name] = baseline._replace(arch=str(spec))
    random_archs = matched_random_archs(context["search"], settings.get("random", 0), settings.get("match_pct", 5.0))
    models |= {name: Baseline(arch) for name, arch in random_archs.items()}
    if settings.get("prior_only"):
        try:
            models["prior-only"] = Baseline(str(prior_only_arch(Path(context["search"]["arch_json"]))))
        except UsageError as err:  # a space without inherited weights has no prior to derive from
            stderr.print(f"[pipeline] no prior-only baseline: {err}")
    # one training per distinct detector, the searched one's included: Lite0 scaled to Lite0's own latency is Lite0,
    # and the prior-only derivation is the searched one where the search turned θ's departures down
    searched = (str(_train_config(config, context["search"]["arch"]).trained_arch()), "edgedet")
    out, trained = {}, {searched: context["train"]}
    for name, b in models.items():
        recipe = _train_config(config, b.arch, b.head, own_imgsz=b.scaled)
        detector = (str(recipe.trained_arch()), b.head)
        if detector not in trained:
            trained[detector] = _train(recipe, folder / "baselines" / name, resume)
        out[name] = {"arch": b.arch, "head": b.head, **trained[detector]}
    return out


def matched_random_archs(search: dict[str, Any], count: int, match_pct: float) -> dict[str, str]:
    """``random1`` … ``randomN``: seeded random architectures of the searched one's space and input size whose
    predicted latency on the search's first device is within ``match_pct`` percent of the searched one's."""
    if count < 1:
        return {}
    searched, device = ArchSpec.parse(search["arch"]), search["devices"][0]
    model = get_profile(device["device"]).latency_model(device["precision"])
    space = searched.search_space
    table, fixed = layer_table(model, space, searched.imgsz), model.fixed_ms(space, searched.imgsz)
    return {f"random{i + 1}": str(to_arch(space, searched.imgsz, random_ops_near(
        table, fixed, device["predicted_ms"], match_pct / 100, random.Random(i)))) for i in range(count)}


def export_stage(config: PipelineConfig, folder: Path, context: Context, resume: bool) -> dict[str, Any]:
    """FP32 always (this host's reference); FP16 too when the target device runs FP16 (its profile's precision)."""
    checkpoint = Path(context["train"]["checkpoint"])
    result = export_checkpoint(checkpoint, folder / "model.onnx")
    baselines = {name: str(export_checkpoint(Path(b["checkpoint"]), folder / "baselines" / name / "model.onnx")
                           .onnx_path) for name, b in context["baselines"].items()}
    half = (str(export_checkpoint(checkpoint, folder / "model.fp16.onnx", half=True).onnx_path)
            if get_profile(config.devices[0]).precision == "fp16" else None)
    return {"onnx": str(result.onnx_path), "sidecar": str(result.card_path), "max_abs_diff": result.max_abs_diff,
            "baselines": baselines, "fp16": half}


def deployment(config: PipelineConfig, export: dict[str, Any], quantize: dict[str, Any]) -> dict[str, Any]:
    """Which file is meant for the target device (its profile's precision and INT8 flavour) and which for this
    host (ONNX Runtime on its CPU: INT8 in the CPU flavour)."""
    profile = get_profile(config.devices[0])
    files = {"fp32": export["onnx"], "fp16": export.get("fp16"),
             "int8": quantize.get("device_onnx") or quantize["onnx"]}
    runtime = ", ".join(p.removesuffix("ExecutionProvider") for p in profile.runtime.get("providers", []))
    return {"device": {"id": profile.id, "precision": profile.precision, "runtime": runtime,
                       "file": files[profile.precision] or export["onnx"]},
            "host": {"file": quantize["onnx"], "precision": "int8 (cpu flavour)"}}


def quantize_stage(config: PipelineConfig, folder: Path, context: Context, resume: bool) -> dict[str, Any]:
    """INT8 of the searched model for this host (CPU flavour) and, when the target device runs INT8 in another
    flavour (TensorRT's), for the device too; of every baseline when ``quantize.baselines`` is set."""
    settings = config.stage("quantize")
    options = {key: value for key, value in settings.items() if key != "baselines"}
    out = folder / "model.int8.onnx"
    result = quantize_model(Path(context["export"]["onnx"]), Path(config.data), out, **options)
    profile = get_profile(config.devices[0])
    device_onnx = None
    if profile.precision == "int8" and profile.int8_flavour != "cpu":
        device_onnx = folder / f"model.int8.{profile.int8_flavour}.onnx"
        quantize_model(Path(context["export"]["onnx"]), Path(config.data), device_onnx, flavour=profile.int8_flavour,
                       **options)
    baselines = {}
    for name, path in context["export"]["baselines"].items() if settings.get("baselines") else ():
        baselines[name] = str(Path(path).with_suffix(".int8.onnx"))
        quantize_model(Path(path), Path(config.data), Path(baselines[name]), **options)
    outputs = {"onnx": str(out), "device_onnx": device_onnx and str(device_onnx), "fp32_AP": result.val_fp32_ap,
               "int8_AP": result.val_int8_ap, "within_budget": result.within_budget, "guard_AP_drop": result.ap_drop,
               "kept_fp32": result.kept_fp32, "baselines": baselines}
    return outputs | {"deploy": deployment(config, context["export"], outputs)}


def evaluate_stage(config: PipelineConfig, folder: Path, context: Context, resume: bool) -> dict[str, Any]:
    """COCO metrics of every deployed model on val, through the one ONNX Runtime path, and of the peers in
    ``evaluate.peers`` (their own decoders, the same images and evaluation)."""
    annotations, images = find_split(Path(config.data), "val")
    extra = {"searched fp16": context["export"].get("fp16"),
             "searched int8 device": context["quantize"].get("device_onnx")}
    models = {"searched fp32": context["export"]["onnx"], "searched int8": context["quantize"]["onnx"],
              **{key: path for key, path in extra.items() if path},
              **{f"{name} fp32": path for name, path in context["export"]["baselines"].items()},
              **{f"{name} int8": path for name, path in context["quantize"]["baselines"].items()}}
    predictors = {key: OnnxDetector(Path(path), threads=2) for key, path in models.items()}
    peers_folder = config.stage("evaluate").get("peers")
    if peers_folder:
        class_names = predictors["searched fp32"].class_names
        for name, (peer, path) in load_peers(Path(peers_folder), annotations, class_names, threads=2).items():
            predictors[f"{name} (peer)"], models[f"{name} (peer)"] = peer, str(path)
    metrics = {}
    for key, predictor in predictors.items():
        report, _ = evaluate_predictor(predictor, annotations, images, predictor.class_names)
        numbers = report.to_json()
        metrics[key] = {"path": models[key], **{k: numbers[k] for k in ("AP", "AP50", "AP75")}}
    atomic_write_json(folder / "eval.json", metrics)
    return {"models": metrics, "eval_json": str(folder / "eval.json")}


def benchmark_stage(config: PipelineConfig, folder: Path, context: Context, resume: bool) -> dict[str, Any]:
    """Host latency of every deployed model (interleaved), each architecture's predicted latency on every device,
    and host LUT predictions vs measured backbones (searched, baselines, random archs) when a host LUT fits."""
    settings = config.stage("benchmark")
    models = context["evaluate"]["models"]
    frames = read_images(split_images(Path(config.data), "val"), 10)
    rows = benchmark_models([Path(m["path"]) for m in models.values()], threads=settings.get("threads", 1),
                            runs=settings.get("runs", 50), images=frames)
    host = {key: {"median_ms": row.median_ms, "p90_ms": row.p90_ms, "e2e_ms": row.end_to_end_ms,
                  "size_mb": row.size_mb} for key, row in zip(models, rows)}
    archs = {"searched": context["search"]["arch"],
             **{name: b["arch"] for name, b in context["baselines"].items()}}
    imgsz = ArchSpec.parse(archs["searched"]).imgsz
    archs = {key: str(ArchSpec.parse(a).with_imgsz(imgsz)) for key, a in archs.items()}
    latency_models = {device: get_profile(device).latency_model() for device in config.devices}
    predicted = {device: {key: predict_ms(model, ArchSpec.parse(a)) for key, a in archs.items()}
                 for device, model in latency_models.items()}
    out = {"host": host, "predicted_ms": predicted, "archs": archs,
           "host_check": _host_check(archs, imgsz, settings.get("random_archs", 5))}
    atomic_write_json(folder / "benchmark.json", out)
    return out | {"benchmark_json": str(folder / "benchmark.json")}


def _host_check(archs: dict[str, str], imgsz: int, random_archs: int) -> dict[str, Any]:
    """Host LUT prediction vs measured backbone latency (fp32, one thread) for ``archs`` and a few random ones."""
    try:
        lut = get_profile("host").latency_model("fp32")
        candidates = {key: ArchSpec.parse(a) for key, a in archs.items()}
        rng = random.Random(0)
        space = get_space(candidates["searched"].space)
        candidates |= {f"random {i + 1}": sample_arch(space, imgsz, rng) for i in range(random_archs)}
        predicted = {key: predict_ms(lut, arch) for key, arch in candidates.items()}
    except EdgedetError:
        space_name = ArchSpec.parse(archs["searched"]).space
        return {"skipped": f"no host fp32 LUT for {space_name}@{imgsz}; measure one with `edgedet profile build "
                           f"--name host --space {space_name} --imgsz {imgsz}` before the pipeline"}
    return {"predicted_ms": predicted, "measured_ms": measure_backbones(candidates, "fp32")}


def report_stage(config: PipelineConfig, folder: Path, context: Context, resume: bool) -> dict[str, Any]:
    return {"report": str(write_report(folder, context, config))}


STAGE_FUNCTIONS = {"profile": profile_stage, "search": search_stage, "train": train_stage,
                   "baselines": baselines_stage, "export": export_stage, "quantize": quantize_stage,
                   "evaluate": evaluate_stage, "benchmark": benchmark_stage, "report": report_stage}

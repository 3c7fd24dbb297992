"""The ``edgedet`` command line: thin typer commands, each delegating to one library function.

Expected failures (``EdgedetError``) become one line on stderr and exit 2 (bad input) or 1 (failure while running).
Heavy imports (torch) happen inside the commands that need them, so ``--help`` and runtime commands stay fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from edgedet import __version__
from edgedet.errors import EdgedetError, UsageError
from edgedet.io import run_dir
from edgedet.reuse import changed_settings
from edgedet.search.config import SearchConfig
from edgedet.space.archspec import ArchSpec
from edgedet.settings import default_of, parse_set_items
from edgedet.train.config import TrainConfig

app = typer.Typer(
    help="Search, train, quantize and run a fast object detector for a chosen edge device.\n\n"
    "Example: edgedet profile build --name host && edgedet profile check host",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
profile_app = typer.Typer(help="Device profiles and their latency look-up tables (LUTs).", no_args_is_help=True)
arch_app = typer.Typer(help="Architectures (ArchSpec strings or arch.json files).", no_args_is_help=True)
app.add_typer(profile_app, name="profile")
app.add_typer(arch_app, name="arch")
console = Console(width=None if sys.stdout.isatty() else 160)  # tables stay readable in logs

JsonOut = Annotated[Optional[Path], typer.Option("--json-out", help="Also write the numbers as flat JSON here.")]
Provider = Annotated[str, typer.Option(
    help="ONNX Runtime execution provider: auto (the best this build has, in the order tensorrt, cuda, openvino, "
         "coreml, cpu) or one of those by name; the choice is printed and written to --json-out.")]
TensorRT = Annotated[Optional[str], typer.Option(
    "--trt", help="TensorRT provider switches, comma-separated: fp16 (FP16 engines), int8 (INT8 engines: needed for "
                  "an INT8 QDQ model), cache=DIR (keep built engines: a first build takes minutes).")]
Classes = Annotated[Optional[str], typer.Option(help="Comma-separated class subset, e.g. person,car.")]
TargetMs = Annotated[Optional[list[float]], typer.Option(help="Hard latency budget in ms: once for every device, "
                                                              "or once per --device in order. The search is pulled "
                                                              "to it from above and below; the result spends the "
                                                              "budget (see --budget-use).")]


def _version(value: bool) -> None:
    if value:
        console.print(f"edgedet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """edgedet: profile a device, search a backbone for it, train, quantize, evaluate and run it live."""


def _write_json(path: Optional[Path], data: dict) -> None:
    if path:
        from edgedet.io import atomic_write_json

        atomic_write_json(path, data)
        console.print(f"wrote {path}")


@profile_app.command("list")
def profile_list() -> None:
    """List the known device profiles (shipped and built here).

    Example: edgedet profile list
    """
    from edgedet.devices.profile import list_profiles

    table = Table("id", "aliases", "latency source", "checked", "precisions", "description")
    for p in list_profiles():
        unchecked = str(p.latency.get("expected_error", "unchecked")).startswith("unchecked")
        checked = "no (a prior)" if p.latency["source"] != "lut" else "no" if unchecked else "yes"
        table.add_row(p.id, ", ".join(p.aliases), p.latency["source"], checked, ", ".join(p.precisions),
                      p.description)
    console.print(table)
    console.print("`edgedet profile show ID` says where a profile comes from and how far to trust it")


@profile_app.command("show")
def profile_show(device: Annotated[str, typer.Argument(help="Profile id or alias, e.g. jetson.")]) -> None:
    """Print a profile: hardware, runtime, where its latencies come from and how far to trust them.

    Example: edgedet profile show jetson
    """
    from edgedet.devices.profile import get_profile

    profile = get_profile(device)
    console.print(f"[bold]{profile.id}[/] ({profile.path})")
    console.print(profile.to_yaml(), markup=False, highlight=False)
    source = profile.latency["source"]
    console.print(f"[bold]latency source:[/] {'measured LUT' if source == 'lut' else 'analytic prior, not measured'}"
                  f" ({', '.join(profile.precisions)}); runs on {', '.join(profile.runtime.get('providers', []))}")
    for key, title in (("provenance", "where it comes from"), ("expected_error", "how far to trust it")):
        console.print(f"[bold]{title}:[/] {profile.latency.get(key, 'not stated')}", highlight=False)
    if source != "lut":
        console.print("Own the device? `edgedet profile build` there replaces this prior with a measured LUT "
                      "(README: On the device).", highlight=False)


@profile_app.command("build")
def profile_build(
    name: Annotated[str, typer.Option(help="Profile id to write (runs/profile/NAME/).")] = "host",
    space: Annotated[str, typer.Option(help="Search space whose layers to measure: lite0, fbnet or tiny.")] = "lite0",
    imgsz: Annotated[int, typer.Option(help="Input size (a multiple of 32).")] = 320,
    width_mult: Annotated[float, typer.Option(help="Width multiplier of the space.")] = 1.0,
    precision: Annotated[str, typer.Option(help="fp32, or int8 (ONNX Runtime static QDQ).")] = "fp32",
    threads: Annotated[int, typer.Option(help="ONNX Runtime intra-op threads.")] = 1,
    rounds: Annotated[int, typer.Option(help="Interleaved timing rounds (more = steadier, slower).")] = 15,
    provider: Annotated[str, typer.Option(help="Execution provider the deployed model will run on (cpu, cuda, "
                                               "tensorrt, openvino, coreml): measure with it.")] = "cpu",
    trt: TensorRT = None,
    out: Annotated[Optional[Path], typer.Option(help="Profile folder (default runs/profile/NAME).")] = None,
) -> None:
    """Measure a latency LUT on this machine with ONNX Runtime: every (layer shape, op) as a one-block model,
    timed interleaved with a reference model. Re-running with another --space/--imgsz/--precision adds to it.

    Example: edgedet profile build --name host --precision int8

    Example (on a Jetson): edgedet profile build --name orin --provider tensorrt --trt fp16,cache=trt-engines
    """
    from edgedet.devices.builder import BuildSettings, build_lut
    from edgedet.space import get_space

    if precision not in ("fp32", "int8"):
        raise UsageError(f"--precision {precision}: measured LUTs are fp32 or int8")
    if threads < 1 or rounds < 1:
        raise UsageError("--threads and --rounds must be at least 1")
    settings = BuildSettings(name, get_space(space, width_mult=width_mult), imgsz, precision, threads, rounds,
                             provider=provider, trt=trt)
    profile = build_lut(settings, out or Path("runs") / "profile" / name)
    console.print(f"wrote profile '{profile.id}' to {profile.path}; check it with `edgedet profile check {name}`")


@profile_app.command("check")
def profile_check(
    device: Annotated[str, typer.Argument(help="A profile built on this machine, e.g. host.")] = "host",
    samples: Annotated[int, typer.Option(help="Random architectures to measure.")] = 50,
    precision: Annotated[Optional[str], typer.Option(help="fp32 or int8 (default: the profile's).")] = None,
    space: Annotated[Optional[str], typer.Option(help="Space to sample from (default: the LUT's first).")] = None,
    rounds: Annotated[int, typer.Option(help="Interleaved timing rounds.")] = 10,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 1,
    json_out: JsonOut = None,
) -> None:
    """Predicted (LUT) vs measured latency of random whole backbones: error, share within ±10%, Spearman.

    Example: edgedet profile check host --samples 50 --json-out check.json
    """
    from edgedet.devices.builder import get_or_build_profile
    from edgedet.devices.check import check_profile, record_check, rows_json, summarize

    if samples < 3:
        raise UsageError("--samples must be at least 3 for a rank correlation")
    profile = get_or_build_profile(device)
    rows, speed = check_profile(profile, samples=samples, precision=precision, space=space, rounds=rounds, seed=seed)
    table = Table("arch", "MMACs", "predicted ms", "measured ms", "error %")
    for r in rows:
        arch = r.arch if len(r.arch) <= 60 else r.arch[:59] + "…"
        table.add_row(arch, f"{r.macs / 1e6:.0f}", f"{r.predicted_ms:.3f}", f"{r.measured_ms:.3f}",
                      f"{r.error_pct:+.1f}")
    console.print(table)
    summary = summarize(rows, speed)
    console.print(
        f"within ±10%: {summary['within_10pct']:.0%}  Spearman: {summary['spearman']:.3f}  "
        f"(MACs alone: {summary['flops_spearman']:.3f})  mean |error|: {summary['mean_abs_pct_error']:.1f}%  "
        f"max: {summary['max_abs_pct_error']:.1f}%  machine speed vs build: x{speed:.2f}"
    )
    if record_check(profile, precision or profile.precision, summary):
        console.print(f"recorded in {profile.path} (its expected_error now says what was measured)")
    _write_json(json_out, summary | {"device": device, "rows": rows_json(rows)})


@arch_app.command("show")
def arch_show(
    spec: Annotated[str, typer.Argument(help="ArchSpec string (e.g. lite0@320) or arch.json.")],
    device: Annotated[Optional[str], typer.Option(help="Add each layer's latency from this profile.")] = None,
    precision: Annotated[Optional[str], typer.Option(help="fp32, fp16 or int8 (default: the profile's).")] = None,
    json_out: JsonOut = None,
) -> None:
    """Per-layer table of an architecture: op, shapes, parameters, MACs and (with --device) latency.

    Example: edgedet arch show lite0@320 --device jetson
    """
    from edgedet.space.report import arch_rows

    arch = ArchSpec.load(spec)
    model = None
    if device:
        from edgedet.devices.builder import get_or_build_profile

        model = get_or_build_profile(device, arch.search_space, arch.imgsz, precision).latency_model(precision)
    rows, totals = arch_rows(arch, model)
    table = Table(*rows[0].keys(), title=str(arch))
    for row in rows + [totals]:
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)
    _write_json(json_out, {"arch": str(arch), **{k: v for k, v in totals.items() if k != "layer"}})


DeviceType = Annotated[Optional[str], typer.Option("--device-type", help="auto (CUDA when present), cpu or cuda "
                                                                          "[default: auto].")]


def _data_or_synthetic(data: Optional[Path]) -> Path:
    """The user's dataset folder (COCO, YOLO or VOC), or the embedded synthetic set (made once under
    runs/data/synthetic)."""
    if data is not None:
        from edgedet.data.formats import detect_format

        detect_format(data)  # one clear line now for a folder that is no dataset, not after minutes of work
        return data
    from edgedet.data.synthetic import make_synthetic

    return make_synthetic(Path("runs") / "data" / "synthetic")


RESUMABLE = ("epochs", "workers", "device", "input_sizes", "verify_departures")  # what a run may change when
# resumed: its length, its hardware, and how a search derives (input sizes, verification: after the epochs)


def _run_config(stage: str, name: Optional[str], resume: bool, schema: Callable[[dict], Any], given: dict[str, Any],
                demo_data: Callable[[], Any]) -> tuple[Path, Any]:
    """The run folder and its settings: on --resume the saved ones, with the given ones allowed to change only what
    a run can change midway (``RESUMABLE``; edgedet.reuse's rule: a run is never passed off as made with other
    settings); else ``given`` (the embedded demo set when no --data). A fresh run never lands on a finished or
    interrupted one: that would overwrite its checkpoint and mix two runs in one log."""
    if resume and name is None:
        raise UsageError(f"--resume needs --name NAME of the {stage} run to continue")
    folder = run_dir(stage, name)
    if resume and (folder / "config.json").exists():
        saved = json.loads((folder / "config.json").read_text())
        changed = [key for key in changed_settings(saved, given) if key not in RESUMABLE]
        if changed:
            raise UsageError(f"{folder} was made with another {', '.join(changed)}: resume it without changing "
                             f"{'it' if len(changed) == 1 else 'them'} (only {', '.join(RESUMABLE)} may change), "
                             "or start a new run with another --name")
        return folder, schema(saved | given)
    if not resume and (folder / "last.pt").exists():
        raise UsageError(f"{folder} already holds a {stage} run: add --resume to continue it, or choose another "
                         "--name")
    return folder, schema(given if "data" in given else {"data": demo_data()} | given)


def _settings(config_file: Optional[Path], options: dict[str, Any], items: Optional[list[str]]) -> dict[str, Any]:
    """The settings a run starts from, each over the one before: its config's defaults (not here), ``--config
    FILE.yaml``, the options given (``None``: not given), ``--set key=value`` (values read as YAML)."""
    import yaml

    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            values = yaml.safe_load(config_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise UsageError(f"--config {config_file}: cannot read it as YAML ({str(err).splitlines()[0]})") from err
        if not isinstance(values, dict):
            raise UsageError(f"--config {config_file}: expected a mapping of setting: value")
    return values | {key: value for key, value in options.items() if value is not None} | parse_set_items(items or [])


def _default(schema: type, key: str, text: str) -> str:
    """Option help ending in the default that the run's config dataclass holds (the one place defaults live)."""
    return f"{text} [default: {default_of(schema, key)}]"


DataDirs = Annotated[Optional[list[Path]], typer.Option(
    "--data", help="Dataset folder: COCO (annotations/instances_*.json), YOLO (data.yaml, or images/ + labels/) or "
                   "Pascal VOC, detected from the folder. Repeat it to use the union (classes matched by name). "
                   "Default: the synthetic set.")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="YAML file of settings (keys as for --set).")]
SetItems = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Any setting as KEY=VALUE (repeat), over the options above, e.g. train: --set warmup_epochs=1 "
                  "--set ema_decay=0.999 --set box_weighting=score; search: --set beta=0.6 --set alpha=0.3. The "
                  "keys are the fields of the run's config.json; a wrong key or type is named.")]


@app.command("train")
def train_command(
    data: DataDirs = None,
    arch: Annotated[Optional[str], typer.Option(help=_default(TrainConfig, "arch", "ArchSpec string or arch.json "
                                                                                   "from a search."))] = None,
    classes: Classes = None,
    imgsz: Annotated[Optional[int], typer.Option(help="Input size (default: the ArchSpec's).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help=_default(
        TrainConfig, "epochs", "Training epochs (with --resume: the run's own unless given)."))] = None,
    time: Annotated[Optional[str], typer.Option(
        help="Time budget, e.g. 90m or 1.5h: re-planned every 20 steps from the measured step time so that warm-up "
             "+ cosine end when the time is up, inside an epoch if need be (overrides --epochs).")] = None,
    batch: Annotated[Optional[int], typer.Option(help=_default(TrainConfig, "batch", "Images per step."))] = None,
    lr: Annotated[Optional[float], typer.Option(help=_default(TrainConfig, "lr", "Peak learning rate."))] = None,
    optimizer: Annotated[Optional[str], typer.Option(help=_default(TrainConfig, "optimizer", "adamw or sgd."))
                         ] = None,
    pretrained: Annotated[Optional[bool], typer.Option("--pretrained/--scratch", help=_default(
        TrainConfig, "pretrained", "Start from ImageNet Lite0 weights (lite0 space)."))] = None,
    init_from: Annotated[Optional[Path], typer.Option(
        help="A search run (runs/search/NAME) whose supernet trained these classes: start from its weights on this "
             "architecture's path (backbone, neck and head) instead of ImageNet's alone.")] = None,
    distill: Annotated[Optional[str], typer.Option(
        help="A COCO-trained teacher (PATH.onnx or PATH.onnx:ADAPTER) that scores every anchor point of each "
             "augmented batch; the student learns its scores of every class and its confident boxes beside the "
             "labels (online dense distillation; --set distill_weight=W weighs it). Its grids must fit the student's: "
             "YOLOX-Nano at any size, NanoDet-m's 320 graph for a 320 student; --set distill_scale=2 runs the "
             "teacher at twice the student's size.")] = None,
    head: Annotated[Optional[str], typer.Option(help=_default(
        TrainConfig, "head", "edgedet (anchor-free) or ssdlite (torchvision's SSDlite head, boxes and loss on the "
                             "same backbone: a baseline)."))] = None,
    workers: Annotated[Optional[int], typer.Option(help=_default(TrainConfig, "workers",
                                                                 "Data-loading worker processes."))] = None,
    seed: Annotated[Optional[int], typer.Option(help=_default(
        TrainConfig, "seed", "Seed for weights, data order and augmentation."))] = None,
    eval_every: Annotated[Optional[int], typer.Option(help=_default(
        TrainConfig, "eval_every", "Evaluate on val every N epochs (and at the end)."))] = None,
    eval_images: Annotated[Optional[int], typer.Option(help=_default(
        TrainConfig, "max_eval_images", "Val images (the first N of the first dataset) evaluated during training; "
                                        "the whole val of every dataset at the end."))] = None,
    config_file: ConfigFile = None,
    set_: SetItems = None,
    name: Annotated[Optional[str], typer.Option(help="Run folder runs/train/NAME (default: next number).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue runs/train/NAME from its last.pt.")] = False,
    device_type: DeviceType = None,
    json_out: JsonOut = None,
) -> None:
    """Train a detector on COCO, YOLO or VOC data (one dataset or several): EMA, warm-up + cosine (or a --time
    budget), a checkpoint every epoch, best by val AP. Ctrl-C keeps the last finished epoch; --resume continues
    exactly. Multi-GPU: torchrun --nproc_per_node N -m edgedet train ...

    Example: edgedet train --data ../shared/datasets/people --time 90m --name people
    """
    from edgedet.train.distributed import from_rank0, init_distributed, world_size
    from edgedet.train.engine import train

    given = _settings(config_file, dict(
        arch=arch, data=[str(_data_or_synthetic(d)) for d in data] if data else None, classes=_class_list(classes),
        imgsz=imgsz, epochs=epochs, time=time, batch=batch, lr=lr, optimizer=optimizer, pretrained=pretrained,
        init_from=str(init_from) if init_from else None, distill=distill, head=head, workers=workers, seed=seed,
        eval_every=eval_every, max_eval_images=eval_images,
        device=device_type), set_)
    if name is None and world_size() > 1:  # under torchrun: rank 0 numbers the run folder, every rank uses it
        name = from_rank0(run_dir("train", None).name if init_distributed() == 0 else None)
    if "arch" in given:  # as the run saves it (the full ArchSpec at its input size), so a resume compares alike
        given["arch"] = str(TrainConfig(arch=given["arch"], imgsz=given.get("imgsz")).trained_arch())
    folder, config = _run_config("train", name, resume, TrainConfig.from_dict, given,
                                 lambda: [str(_data_or_synthetic(None))])
    final = train(config, folder, resume=resume)
    ap, ap50 = final.get("AP", float("nan")), final.get("AP50", float("nan"))
    console.print(f"trained {folder}: AP {ap:.1f}  AP50 {ap50:.1f} on {Path(config.data[0]).name} val "
                  "(best.pt, last.pt, log.csv, final_eval.json)")
    for key, value in final.items():
        if key.endswith(".AP") and len(config.data) > 1:
            console.print(f"  {key[:-3]} val: AP {value:.1f}  AP50 {final[key + '50']:.1f}")
    _write_json(json_out, {k: v for k, v in final.items() if isinstance(v, (int, float))})


@app.command("eval")
def eval_command(
    model: Annotated[str, typer.Argument(
        help="A checkpoint (.pt) from edgedet train, an exported .onnx, another project's ONNX detector (FastestDet, "
             "NanoDet, PicoDet, YOLOX; PATH.onnx:ADAPTER names the adapter), or teachers fused as A.onnx+B.onnx.")],
    compare: Annotated[Optional[list[str]], typer.Option(
        help="More models (same forms) to evaluate on the same images, shown side by side (repeat it).")] = None,
    data: Annotated[Optional[Path], typer.Option(help="COCO-format folder (default: the synthetic set).")] = None,
    split: Annotated[str, typer.Option(help="Split to evaluate on.")] = "val",
    max_images: Annotated[Optional[int], typer.Option(help="Evaluate only the first N images.")] = None,
    classes: Annotated[Optional[str], typer.Option(
        help="Score only these classes (comma-separated, matched by name), e.g. person: an 80-class peer beside a "
             "person model.")] = None,
    conf: Annotated[float, typer.Option(help="Score threshold (low for AP).")] = 0.05,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads.")] = 2,
    provider: Provider = "auto",
    trt: TensorRT = None,
    name: Annotated[Optional[str], typer.Option(help="Run folder runs/eval/NAME.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Detections JSON of MODEL (default: in the run folder).")] = None,
    json_out: JsonOut = None,
) -> None:
    """COCO evaluation with pycocotools: AP, AP50, AP75, APs/m/l, AR and per-class AP. Checkpoints, ONNX FP32
    and ONNX INT8 go through the same letterbox and numpy decode + NMS, so their numbers compare.

    Example: edgedet eval runs/export/1/model.onnx --compare runs/quantize/1/model.int8.onnx --data ../shared/datasets/coco-mini

    Teachers: edgedet eval ../shared/peers/picodet-s/picodet_s_512.onnx --compare ../shared/peers/yolox-nano/yolox_nano.onnx
    --compare "../shared/peers/picodet-s/picodet_s_512.onnx+../shared/peers/yolox-nano/yolox_nano.onnx" --data ../shared/datasets/coco-mini
    """
    from edgedet.data.annotations import find_split
    from edgedet.evaluate.coco_eval import per_class_table, report_table
    from edgedet.evaluate.images import evaluate_predictor, load_predictor
    from edgedet.io import atomic_write_json

    annotations, images = find_split(_data_or_synthetic(data), split)
    models = [model, *(compare or [])]
    chosen, providers = _providers(provider, trt)
    predictors = [load_predictor(path, conf=conf, threads=threads, providers=providers)  # bad files fail first
                  for path in models]
    reports, folder = {}, run_dir("eval", name)
    for index, (path, (predict, class_names)) in enumerate(zip(models, predictors)):
        report, results = evaluate_predictor(predict, annotations, images, class_names, max_images=max_images,
                                             classes=_class_list(classes))
        reports[path] = report
        detections = out if out and index == 0 else folder / f"detections{index or ''}.json"
        atomic_write_json(detections, results)
    console.print(report_table(reports))
    console.print(per_class_table(reports[model], top=20))
    others = {key: report.to_json() for key, report in reports.items()}
    main_report = others.pop(model)
    atomic_write_json(folder / "eval.json", main_report | {"model": model, "data": str(annotations),
                                                           "compare": others})
    console.print(f"wrote {folder / 'eval.json'}")
    _write_json(json_out, main_report | {"provider": chosen} | {
        f"{_short_name(k)}.{metric}": r[metric] for k, r in others.items() for metric in reports[k].metrics})


def _providers(provider: str, trt: Optional[str]) -> tuple[str, list]:
    """The execution provider chosen (said with the results, so that an error stays the one line on stderr) and the
    list ONNX Runtime takes."""
    from edgedet.runtime.session import choose_providers

    chosen, providers = choose_providers(provider, trt)
    console.print(f"execution provider: {chosen}" + (f" (--provider {provider})" if provider == "auto" else ""),
                  highlight=False)
    return chosen, providers


def _short_name(spec: str) -> str:
    """``dir/a.onnx+dir/b.onnx:yolox`` -> ``a.onnx+b.onnx:yolox``: a model's key in flat JSON."""
    return "+".join(Path(part).name for part in spec.split("+"))


@app.command("export")
def export_command(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint (.pt) from edgedet train.")],
    imgsz: Annotated[Optional[int], typer.Option(help="Input size (default: the one it was trained at).")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
    half: Annotated[bool, typer.Option("--half", help="FP16 weights and compute (input and output stay FP32): "
                                                      "for TensorRT's fp16 mode or a GPU provider.")] = False,
    name: Annotated[Optional[str], typer.Option(help="Run folder runs/export/NAME.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="ONNX file (default: runs/export/NAME/model.onnx, or "
                                                     "model.fp16.onnx with --half).")] = None,
    json_out: JsonOut = None,
) -> None:
    """Export to ONNX with the raw head output (decode + NMS stay outside the graph) and a model.json sidecar;
    checked with onnx.checker and against the torch outputs.

    Example: edgedet export runs/train/person/best.pt --name person

    Example (Jetson's fp16): edgedet export runs/train/person/best.pt --name person --half
    """
    from edgedet.export.onnx_export import export_checkpoint

    target = out or run_dir("export", name) / ("model.fp16.onnx" if half else "model.onnx")
    if json_out is not None and json_out.resolve() == target.with_suffix(".json").resolve():
        raise UsageError(f"--json-out {json_out} is the sidecar of {target.name}: write the numbers elsewhere")
    result = export_checkpoint(checkpoint, target, imgsz=imgsz, opset=opset, half=half)
    console.print(f"ONNX Runtime vs torch: max abs difference {result.max_abs_diff:.2e} "
                  f"({result.relative_diff:.2e} of the largest output)")
    console.print(f"wrote {result.onnx_path} and {result.card_path}; next: edgedet quantize {result.onnx_path} "
                  "--data DIR")
    _write_json(json_out, {"max_abs_diff": result.max_abs_diff, "relative_diff": result.relative_diff,
                           "size_mb": result.onnx_path.stat().st_size / 2**20})


@app.command("quantize")
def quantize_command(
    model: Annotated[Path, typer.Argument(help="An FP32 model.onnx from edgedet export (with its model.json).")],
    data: Annotated[Optional[Path], typer.Option(help="Dataset: calibration and the accuracy guard from its train "
                                                     "split (apart), the reported AP from val (default: the "
                                                     "synthetic set).")] = None,
    calib_images: Annotated[int, typer.Option(help="Calibration images (a seeded random draw of train).")] = 200,
    guard_images: Annotated[int, typer.Option(help="Other train images the accuracy guard chooses on.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the train draw.")] = 0,
    method: Annotated[str, typer.Option(help="Calibration: minmax, entropy or percentile.")] = "minmax",
    max_ap_drop: Annotated[float, typer.Option(help="Largest AP loss (points) allowed; beyond it the most "
                                                    "sensitive nodes stay FP32.")] = 1.0,
    eval_images: Annotated[Optional[int], typer.Option(help="Val images the AP is reported on (default: all).")
                           ] = None,
    device: Annotated[Optional[str], typer.Option(help="Profile the model will run on: its runtime picks the INT8 "
                                                       "flavour, and a warning says when INT8 would take a fallback "
                                                       "path there.")] = None,
    flavour: Annotated[str, typer.Option(help="INT8 flavour: cpu (U8 activations, S8 weights: ONNX Runtime on "
                                              "CPUs), tensorrt (symmetric INT8, zero points 0: TensorRT on Jetson), "
                                              "or auto (from --device; cpu without one).")] = "auto",
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads for the guard's evaluations.")] = 2,
    name: Annotated[Optional[str], typer.Option(help="Run folder runs/quantize/NAME.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="INT8 file (default: runs/quantize/NAME/STEM.int8.onnx, STEM "
                                                     "the input's file name).")
                   ] = None,
    json_out: JsonOut = None,
) -> None:
    """ONNX Runtime static INT8 (QDQ) calibrated on real images through the inference letterbox, in the flavour
    of the runtime that runs it, with an accuracy guard (partial quantization if INT8 loses more than the budget on
    train images held apart from calibration) and FP32 vs INT8 AP reported on val, which no choice saw.

    Example: edgedet quantize runs/export/person/model.onnx --data ../shared/datasets/coco-mini --name person

    Example (Jetson, TensorRT's symmetric INT8): edgedet quantize runs/export/person/model.onnx --device jetson
    """
    from edgedet.deploy import quantize_model
    from edgedet.export.quantize import FLAVOURS

    if flavour not in ("auto", *FLAVOURS):
        raise UsageError(f"--flavour {flavour}: use auto, {', '.join(FLAVOURS)}")
    if device:
        from edgedet.devices.profile import get_profile

        profile = get_profile(device)
        if flavour == "auto":
            flavour = profile.int8_flavour
        if warning := profile.int8_warning():
            print(f"warning: {warning}", file=sys.stderr)
    if flavour == "auto":
        flavour = "cpu"
    target = out or run_dir("quantize", name) / f"{model.stem}.int8.onnx"
    console.print(f"INT8 flavour: {flavour}")
    result = quantize_model(model, _data_or_synthetic(data), target, calib_images=calib_images,
                            guard_images=guard_images, method=method, max_ap_drop=max_ap_drop,
                            eval_images=eval_images, threads=threads, flavour=flavour, seed=seed)
    table = Table("model", "AP guard (train)", "AP val", "size MB", title="FP32 vs INT8")
    for path, guard_ap, val_ap in ((model, result.fp32_ap, result.val_fp32_ap),
                                   (target, result.int8_ap, result.val_int8_ap)):
        table.add_row(str(path), f"{guard_ap:.2f}", f"{val_ap:.2f}", f"{path.stat().st_size / 2**20:.2f}")
    console.print(table)
    if result.kept_fp32:
        console.print(f"kept in FP32: {', '.join(result.kept_fp32)}")
    console.print(f"wrote {target}; measure it with `edgedet benchmark {target} {model}`")
    _write_json(json_out, {"flavour": flavour, "fp32_AP": result.val_fp32_ap, "int8_AP": result.val_int8_ap,
                           "AP_drop": result.val_fp32_ap - result.val_int8_ap, "guard_AP_drop": result.ap_drop,
                           "kept_fp32": len(result.kept_fp32), "within_budget": result.within_budget})


@app.command("benchmark")
def benchmark_command(
    models: Annotated[list[str], typer.Argument(
        help="ONNX models: edgedet exports (with model.json) and/or other projects' detectors such as "
             "../shared/peers/fastestdet/FastestDet.onnx (PATH.onnx:ADAPTER names the adapter: fastestdet, nanodet, "
             "picodet, yolox); they run as their adapter runs them, pre- and post-processing timed too.")],
    device: Annotated[str, typer.Option(help="Profile whose LUT predicts the backbone latency beside the "
                                             "measured one.")] = "host",
    threads: Annotated[Optional[list[int]], typer.Option(help="ONNX Runtime threads (repeat: --threads 1 "
                                                              "--threads 2).")] = None,
    runs: Annotated[int, typer.Option(help="Timed runs per model (after warm-up).")] = 100,
    warmup: Annotated[int, typer.Option(help="Untimed runs per model first.")] = 10,
    data: Annotated[Optional[Path], typer.Option(help="COCO-format folder whose val images time the pre- and "
                                                     "post-processing (default: the synthetic set).")] = None,
    provider: Provider = "auto",
    trt: TensorRT = None,
    json_out: JsonOut = None,
) -> None:
    """Latency of one or more ONNX models measured in the same run (interleaved bursts): median, p90, p99,
    throughput, pre-/post-processing apart from the network, memory, size, and the LUT prediction.

    Example: edgedet benchmark runs/export/1/model.onnx runs/quantize/1/model.int8.onnx --threads 1 --threads 2
    """
    from edgedet.runtime.benchmark_table import benchmark_table

    chosen, providers = _providers(provider, trt)
    rows, table, notes = benchmark_table(models, device=device, threads=threads or [1], runs=runs, warmup=warmup,
                                         data=_data_or_synthetic(data), provider=chosen, providers=providers)
    console.print(table)
    for note in notes:
        console.print(note)
    _write_json(json_out, rows)


@app.command("search")
def search_command(
    device: Annotated[list[str], typer.Option(help="Device profile id or alias (repeat for a multi-device search; "
                                                   "host is measured on first use).")],
    objective: Annotated[Optional[str], typer.Option(help=_default(
        SearchConfig, "objective", "Several devices: mean (average) or max (worst) of each latency relative to the "
                                   "space's reference architecture."))] = None,
    target_ms: TargetMs = None,
    budget_use: Annotated[Optional[float], typer.Option(help=_default(
        SearchConfig, "budget_use", "With --target-ms: the derived backbone's predicted latency is at least this "
                                    "share of each target, where one can be (0.95: within 5% below it; 0: the cap "
                                    "only)."))] = None,
    precision: Annotated[Optional[str], typer.Option(help="fp32, fp16 or int8 (default: each profile's).")] = None,
    space: Annotated[Optional[str], typer.Option(help=_default(
        SearchConfig, "space", "Search space: lite0 (ImageNet-initialised), fbnet or tiny."))] = None,
    reference_prior: Annotated[Optional[float], typer.Option(help=_default(
        SearchConfig, "reference_prior", "lite0 space: when deriving the architecture from θ, nats subtracted per "
        "unit of each op's departure cost (how much it alone changes the ImageNet-pretrained Lite0's features, "
        "measured at the start; 0 for Lite0's own op). 50: a skip that changes them by 3% costs 1.5 nats; 0 = θ "
        "alone. θ's derivation is kept over the prior's alone only where the supernet scores it higher by two "
        "standard errors (--set verify_departures=false: kept regardless)."))] = None,
    imgsz: Annotated[Optional[int], typer.Option(help="Input size, a multiple of 32 (default: the space's).")] = None,
    input_size: Annotated[Optional[list[int]], typer.Option(
        help="Repeat to let the derivation choose the input size too: each size's best architecture within the "
             "targets, scored by the supernet (AP on all of θ's held-apart images, BatchNorm recalibrated; about 3 "
             "CPU-minutes each for 1,144 images). The size at which Lite0 itself comes nearest the target is kept "
             "unless another scores better by over two standard errors (5 folds of those images). A smaller input "
             "leaves more of a budget to the blocks. Ranks best with --set batch_norm=per_batch. May be given on "
             "--resume of a finished search to re-derive.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help=_default(
        SearchConfig, "epochs", "Epochs in all, warm-up included (with --resume: the run's own unless given)."))
                      ] = None,
    warmup_epochs: Annotated[Optional[int], typer.Option(help=_default(
        SearchConfig, "warmup_epochs", "Epochs that train the weights only, before θ."))] = None,
    data: DataDirs = None,
    classes: Classes = None,
    mode: Annotated[Optional[str], typer.Option(help=_default(
        SearchConfig, "mode", "single (one sampled op per sample; CPU default), mixture (all ops, the paper's; CUDA "
                              "default), hybrid (weights single, θ mixture) or auto."))] = None,
    batch: Annotated[Optional[int], typer.Option(help=_default(SearchConfig, "batch", "Images per step."))] = None,
    lr: Annotated[Optional[float], typer.Option(help=_default(
        SearchConfig, "lr", "Peak learning rate of the weights (SGD)."))] = None,
    arch_lr: Annotated[Optional[float], typer.Option(
        help="Learning rate of θ (Adam). Default: the paper's 0.01 scaled by 90/epochs, like the temperature.")] = None,
    workers: Annotated[Optional[int], typer.Option(help=_default(SearchConfig, "workers",
                                                                 "Data-loading worker processes."))] = None,
    seed: Annotated[Optional[int], typer.Option(help=_default(
        SearchConfig, "seed", "Seed for weights, data split and order, and Gumbel draws."))] = None,
    name: Annotated[Optional[str], typer.Option(help="Run folder runs/search/NAME (default: next number).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue runs/search/NAME from its last.pt.")] = False,
    device_type: DeviceType = None,
    config_file: ConfigFile = None,
    set_: SetItems = None,
    json_out: JsonOut = None,
) -> None:
    """Search a backbone for one or several devices: FBNet's Gumbel supernet under a detection head, loss
    L_det · α · log(LAT')^β on the devices' LUT latency (α 0.2, β 0.6: --set alpha=… --set beta=…), and
    --target-ms met exactly by budgeted derivation. Writes runs/search/NAME/: arch.json (train it with
    `edgedet train --arch .../arch.json`), log.csv, probs.png.

    Example: edgedet search --device jetson --target-ms 2.5 --epochs 8 --name jetson
    """
    from edgedet.search.loop import search

    given = _settings(config_file, dict(
        devices=device, precision=precision, objective=objective, target_ms=target_ms, budget_use=budget_use,
        space=space, reference_prior=reference_prior, imgsz=imgsz, input_sizes=input_size, warmup_epochs=warmup_epochs,
        epochs=epochs,
        data=[str(_data_or_synthetic(d)) for d in data] if data else None, classes=_class_list(classes), mode=mode,
        batch=batch,
        lr=lr, arch_lr=arch_lr, workers=workers, seed=seed, device=device_type), set_)
    folder, config = _run_config("search", name, resume, SearchConfig.from_dict, given,
                                 lambda: [str(_data_or_synthetic(None))])
    result = search(config, folder, resume=resume)
    table = Table("device", "precision", "predicted ms", "target ms", "reference ms", "fastest ms",
                  title=str(result.arch))
    for row in result.devices:
        target = "-" if row["target_ms"] is None else f"{row['target_ms']:.3f}"
        table.add_row(row["device"], row["precision"], f"{row['predicted_ms']:.3f}", target,
                      f"{row['reference_ms']:.3f}", f"{row['fastest_ms']:.3f}")
    console.print(table)
    console.print(f"wrote {result.path}; train it with `edgedet train --arch {result.path}`")
    _write_json(json_out, {"arch": str(result.arch), "path": str(result.path), "devices": result.devices})


@app.command("camera")
def camera_command(
    model: Annotated[Path, typer.Argument(help="An exported model.onnx or model.int8.onnx (with its sidecar).")],
    source: Annotated[str, typer.Option(help="Camera index (0), video file, or rtsp:// / http:// stream.")] = "0",
    show: Annotated[bool, typer.Option("--show/--no-show", help="Open a window (only when a display exists).")
                    ] = True,
    save: Annotated[Optional[Path], typer.Option(help="Write the annotated video here (.mp4).")] = None,
    conf: Annotated[float, typer.Option(help="Score threshold for drawn detections.")] = 0.35,
    iou: Annotated[float, typer.Option(help="NMS IoU threshold.")] = 0.5,
    classes: Annotated[Optional[str], typer.Option(help="Show only these classes, e.g. person,car.")] = None,
    max_frames: Annotated[Optional[int], typer.Option(help="Stop after N processed frames.")] = None,
    realtime: Annotated[bool, typer.Option(help="Play a file at its own frame rate, dropping frames the model "
                                                "cannot keep up with (as a live camera would).")] = False,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads.")] = 2,
    provider: Provider = "auto",
    trt: TensorRT = None,
    reconnects: Annotated[int, typer.Option(help="Reconnect attempts when a live stream fails.")] = 5,
    json_out: JsonOut = None,
) -> None:
    """Live detection on a camera, video file or stream: capture in its own thread (newest frame only for live
    sources), boxes and a FPS/latency HUD, q or Esc to quit, stats at the end. Runs without torch.

    Example: edgedet camera runs/pipeline/1/model.int8.onnx --source 0
    """
    from edgedet.runtime.camera import run_loop
    from edgedet.runtime.onnx_detector import OnnxDetector

    chosen, providers = _providers(provider, trt)
    detector = OnnxDetector(model, threads=threads, conf=conf, iou=iou, providers=providers)
    stats = run_loop(detector, source, show=show, save=save, classes=_class_list(classes), max_frames=max_frames,
                     realtime=realtime, max_reconnects=reconnects)
    summary = stats.summary()
    table = Table("frames read", "processed", "dropped", "FPS", "e2e p50 ms", "e2e p95 ms", "inference p50 ms",
                  "inference p95 ms", title=f"{source}: stopped by {summary['stopped_by']}")
    table.add_row(*(str(summary[k]) for k in ("frames_read", "processed", "dropped")),
                  *(f"{summary[k]:.1f}" for k in ("fps", "e2e_p50_ms", "e2e_p95_ms", "inference_p50_ms",
                                                  "inference_p95_ms")))
    console.print(table)
    if save:
        console.print(f"wrote {save}")
    _write_json(json_out, summary | {"provider": chosen})


@app.command("predict")
def predict_command(
    model: Annotated[str, typer.Argument(help="An ONNX model: an edgedet export (with its model.json), another "
                                              "project's detector (PATH.onnx:ADAPTER), or A.onnx+B.onnx fused.")],
    source: Annotated[str, typer.Option(help="An image, a folder of images, a quoted glob ('imgs/**/*.jpg') or a "
                                             "video file.")],
    save_dir: Annotated[Optional[Path], typer.Option(help="Annotated images (or video) go here (default: the run "
                                                          "folder).")] = None,
    no_save: Annotated[bool, typer.Option("--no-save", help="Write no annotated images, only the JSON.")] = False,
    conf: Annotated[float, typer.Option(help="Score threshold.")] = 0.35,
    classes: Classes = None,
    coco_ann: Annotated[Optional[Path], typer.Option(help="COCO annotation file whose image ids the results take "
                                                          "(matched by file name), so pycocotools scores them.")
                        ] = None,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads.")] = 2,
    provider: Provider = "auto",
    trt: TensorRT = None,
    name: Annotated[Optional[str], typer.Option(help="Run folder runs/predict/NAME.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="COCO results JSON (default: RUN/predictions.json; one JSON "
                                                     "line per image beside it, .jsonl).")] = None,
    json_out: JsonOut = None,
) -> None:
    """Boxes for every image of a folder, a glob or a video: annotated copies, a COCO results JSON that pycocotools
    loads, and one JSON line per image (file, id, size, boxes). Unreadable files are skipped and counted.

    Example: edgedet predict runs/export/person/model.onnx --source photos/ --classes person

    Example: edgedet predict model.onnx --source ../shared/video/clip.mp4 --save-dir annotated
    """
    from edgedet.evaluate.images import load_predictor
    from edgedet.runtime.predict import predict_source

    chosen, providers = _providers(provider, trt)
    predict, class_names = load_predictor(model, conf=conf, threads=threads, providers=providers,
                                          classes=_class_list(classes))
    folder = run_dir("predict", name)
    target = out or folder / "predictions.json"
    annotated = None if no_save else save_dir or folder
    summary = predict_source(predict, class_names, source, target, target.with_suffix(".jsonl"),
                             save_dir=annotated, annotations=coco_ann)
    numbers = summary.to_json() | {"provider": chosen}
    unit = "frames" if summary.kind == "video" else "images"
    console.print(f"{numbers['images']} {unit}, {numbers['detections']} boxes, {numbers['median_ms']:.1f} ms median "
                  f"per image ({chosen}); skipped {numbers['skipped']} unreadable"
                  + (f" (first: {summary.skipped[0]})" if summary.skipped else ""))
    console.print(f"wrote {target} (COCO results) and {target.with_suffix('.jsonl')}"
                  + (f"; annotated in {annotated}" if annotated else ""))
    _write_json(json_out, numbers)


@app.command("pipeline")
def pipeline_command(
    device: Annotated[list[str], typer.Option(help="Device profile id or alias (repeat for several devices).")],
    target_ms: TargetMs = None,
    data: Annotated[Optional[Path], typer.Option(help="COCO-format folder (default: the embedded synthetic set, "
                                                     "sized to finish in under 15 minutes on 2 cores).")] = None,
    classes: Classes = None,
    fast: Annotated[bool, typer.Option(help="A few minutes in all: small input, 2 search and 3 training "
                                            "epochs (a smoke run, not a result).")] = False,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a stage setting, e.g. --set "
                                                                    "train.epochs=20 --set baselines.archs=[lite0] "
                                                                    "(stages: search, train, baselines, quantize, "
                                                                    "evaluate, benchmark).")] = None,
    peers: Annotated[Optional[Path], typer.Option(
        help="Folder of peer detectors (fastestdet/FastestDet.onnx, nanodet-m/nanodet.onnx, e.g. ../shared/peers) "
             "to evaluate and time beside your models; COCO classes only.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Run folder runs/pipeline/NAME (default: next number); "
                                                     "re-running a NAME skips finished stages.")] = None,
    device_type: DeviceType = "auto",
    json_out: JsonOut = None,
) -> None:
    """The whole loop for a device: profile -> search -> train (+ baselines) -> export -> quantize -> evaluate ->
    benchmark -> report.md, in runs/pipeline/NAME/ with a manifest; re-running skips finished stages and resumes
    an interrupted one.

    Example: edgedet pipeline --device jetson --name demo
    """
    from edgedet.pipeline.run import PipelineConfig, parse_overrides, run_pipeline

    preset = "fast" if fast else ("synthetic" if data is None else "full")
    overrides = parse_overrides(set_ or [])
    if peers is not None:  # checked now, not after an hour of search and training
        from edgedet.data.annotations import find_split
        from edgedet.runtime.peers import coco80_names, load_peers

        annotations = find_split(_data_or_synthetic(data), "val")[0]
        load_peers(peers, annotations, _class_list(classes) or coco80_names(annotations))
        overrides.setdefault("evaluate", {})["peers"] = str(peers)
    config = PipelineConfig(devices=device, data=str(_data_or_synthetic(data)), preset=preset,
                            target_ms=target_ms or [], classes=_class_list(classes), overrides=overrides,
                            device_type=device_type)
    folder = run_dir("pipeline", name)
    manifest = run_pipeline(config, folder)
    out = {name: stage["outputs"] for name, stage in manifest["stages"].items()}
    models, host = out["evaluate"]["models"], out["benchmark"]["host"]
    table = Table("model", "AP", "AP50", "host median ms", title=f"{folder} ({manifest['total_seconds'] / 60:.1f} "
                                                                  "min of stage time)")
    for key, row in models.items():
        table.add_row(key, f"{row['AP']:.1f}", f"{row['AP50']:.1f}", f"{host[key]['median_ms']:.1f}")
    console.print(table)
    console.print(f"architecture {out['search']['arch_json']}\ncheckpoint   {out['train']['checkpoint']}\n"
                  f"ONNX         {out['export']['onnx']}\nINT8         {out['quantize']['onnx']}\n"
                  f"report       {out['report']['report']}")
    console.print(f"next: edgedet camera {out['quantize']['onnx']} --source 0")
    _write_json(json_out, {"AP": models["searched fp32"]["AP"], "AP50": models["searched fp32"]["AP50"],
                           "int8_AP": models["searched int8"]["AP"], "total_s": manifest["total_seconds"],
                           "median_ms": host["searched int8"]["median_ms"]})


@app.command("report")
def report_command(
    run: Annotated[Path, typer.Argument(help="A pipeline run folder, e.g. runs/pipeline/demo.")],
) -> None:
    """Rebuild report.md and its plots from a pipeline run's manifest.

    Example: edgedet report runs/pipeline/demo
    """
    from edgedet.pipeline.report import rebuild_report

    console.print(f"wrote {rebuild_report(run)}")


data_app = typer.Typer(help="Datasets (COCO, YOLO, VOC): a synthetic set, subsets of COCO, conversion, statistics.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


def _class_list(classes: Optional[str]) -> Optional[list[str]]:
    return [c.strip() for c in classes.split(",") if c.strip()] if classes else None


@data_app.command("synthetic")
def data_synthetic(
    out: Annotated[Path, typer.Option(help="Folder to write (COCO layout: annotations/, train/, val/).")],
    train_images: Annotated[int, typer.Option(help="Training images.")] = 240,
    val_images: Annotated[int, typer.Option(help="Validation images.")] = 60,
    size: Annotated[int, typer.Option(help="Longest image side in pixels (at least 200).")] = 256,
    seed: Annotated[int, typer.Option(help="Same seed, same files.")] = 0,
) -> None:
    """Write a synthetic detection set (circles, squares, triangles on textured backgrounds) in seconds, for tests
    and an offline demo; a folder already made with the same settings is reused.

    Example: edgedet data synthetic --out datasets/synthetic --train-images 240 --val-images 60
    """
    from edgedet.data.synthetic import make_synthetic

    make_synthetic(out, train_images=train_images, val_images=val_images, size=size, seed=seed)
    console.print(f"synthetic set in {out}; look at it with `edgedet data stats {out}`")


@data_app.command("convert")
def data_convert(
    source: Annotated[Path, typer.Argument(help="A dataset folder: YOLO, Pascal VOC or COCO (detected).")],
    out: Annotated[Path, typer.Option(help="Folder to write (must not exist or be empty).")],
    to: Annotated[str, typer.Option(help="Target layout: coco.")] = "coco",
    json_out: JsonOut = None,
) -> None:
    """Write a dataset as COCO files: annotations/instances_SPLIT.json per split and its images (hard links).
    Not needed to train or evaluate (every command reads YOLO and VOC as they are); for tools that want COCO.

    Example: edgedet data convert ../shared/datasets/people --to coco --out people-coco
    """
    from edgedet.data.formats import convert_to_coco

    if to != "coco":
        raise UsageError(f"--to {to}: edgedet writes coco (it reads coco, yolo and voc)")
    counts = convert_to_coco(source, out)
    console.print(f"wrote {out}: " + ", ".join(f"{split} {n} images" for split, n in counts.items()))
    _write_json(json_out, {f"{split}_images": n for split, n in counts.items()})


@data_app.command("coco-subset")
def data_coco_subset(
    coco_root: Annotated[Path, typer.Option(help="A COCO download: annotations/instances_SPLIT.json and SPLIT/.")],
    out: Annotated[Path, typer.Option(help="Folder to write, in the same layout.")],
    split: Annotated[str, typer.Option(help="Split to carve from, e.g. val2017 (or just val).")] = "val2017",
    classes: Annotated[Optional[str], typer.Option(help="Comma-separated COCO class names (default: all).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the image draw.")] = 0,
    max_images: Annotated[Optional[int], typer.Option(help="Draw at most this many images (default: all).")] = None,
) -> None:
    """Carve a small COCO-format folder from a full COCO download: only some classes (original category ids kept),
    at most some images. The images are hard-linked, not copied, so a subset costs no disk space (a copy where the
    file system does not allow links).

    Example: edgedet data coco-subset --coco-root coco --split val2017 --classes person,car --max-images 500 --out pc
    """
    from edgedet.data.subset import carve_coco_subset

    carve_coco_subset(coco_root, split, out, classes=_class_list(classes), max_images=max_images, seed=seed)
    console.print(f"subset in {out}; look at it with `edgedet data stats {out} --split {split}`")


@data_app.command("stats")
def data_stats(
    root: Annotated[Path, typer.Argument(help="A dataset folder: COCO, YOLO or Pascal VOC.")],
    split: Annotated[str, typer.Option(help="Split, e.g. train, val or val2017.")] = "train",
    json_out: JsonOut = None,
) -> None:
    """Images, annotations, crowd regions, images without objects, and per-class counts of a split; for YOLO and
    VOC sets also the format and what reading them skipped (bad label lines, by reason).

    Example: edgedet data stats ../shared/datasets/coco-mini --split val
    """
    from edgedet.data.coco import split_stats

    stats = split_stats(root, split)
    table = Table("id", "class", "annotations", "images")
    for c in stats["classes"]:
        table.add_row(str(c["id"]), c["name"], str(c["annotations"]), str(c["images"]))
    console.print(table)
    console.print(f"{root} ({stats['format']}, read from {stats['annotation_file']}): {stats['images']} images, "
                  f"{stats['annotations']} annotations ({stats['crowd']} crowd), {stats['negatives']} images without any")
    if stats["images_without_label_file"]:
        console.print(f"{stats['images_without_label_file']} images have no label file (read as without objects)")
    for reason, count in stats["skipped"].items():
        console.print(f"skipped when converting: {count} {reason}")
    _write_json(json_out, stats)


@app.command("label")
def label_command(
    source: Annotated[Path, typer.Argument(help="An image folder, a video file, or a dataset folder (COCO, YOLO or "
                                                "VOC) whose labels are kept.")],
    teacher: Annotated[list[str], typer.Option(
        help="A teacher ONNX model (repeat for an ensemble, fused by weighted box fusion): an edgedet export with "
             "its model.json, or a COCO peer (FastestDet, NanoDet, PicoDet, YOLOX; PATH.onnx:ADAPTER names one).")],
    out: Annotated[Path, typer.Option(help="Folder to write in COCO layout (annotations/instances_train.json, "
                                           "train/); the same command again resumes it.")],
    classes: Classes = None,
    conf: Annotated[float, typer.Option(help="Keep fused boxes scoring at least this.")] = 0.3,
    frame_step: Annotated[int, typer.Option(help="Video: label every Nth frame.")] = 10,
    min_change: Annotated[float, typer.Option(help="Video: drop a frame whose 32x32 grey thumbnail differs from the "
                                                   "last kept one by less than this (mean grey levels; 0 keeps "
                                                   "all).")] = 1.5,
    split: Annotated[str, typer.Option(help="Dataset source: the split to label.")] = "train",
    max_images: Annotated[Optional[int], typer.Option(help="Stop after the first N images (a rerun with more "
                                                           "continues).")] = None,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads per teacher.")] = 2,
    json_out: JsonOut = None,
) -> None:
    """Label images with COCO-trained teachers into a COCO-format dataset for a student: teacher boxes carry a
    "score", a dataset's own annotations are kept and win (teachers only add classes it does not annotate).

    Example: edgedet label photos/ --teacher picodet_s_512.onnx --teacher yolox_nano.onnx --classes person --out labelled
    """
    from edgedet.label.labeler import label_source

    summary = label_source(source, teacher, out, classes=_class_list(classes), conf=conf, frame_step=frame_step,
                           min_change=min_change, split=split, max_images=max_images, threads=threads)
    table = Table("class", "teacher boxes", "ground truth")
    for name in dict.fromkeys([*summary.ground_truth, *summary.teacher_boxes]):
        boxes, truth = summary.teacher_boxes.get(name), summary.ground_truth.get(name)
        if boxes or truth:
            table.add_row(name, "-" if boxes is None else str(boxes), "-" if truth is None else str(truth))
    console.print(table)
    others = {"from an earlier run": summary.reused, "unreadable": summary.unreadable,
              "near-duplicate frames dropped": summary.duplicates}
    console.print(f"wrote {summary.annotations}: {summary.images} images, {summary.labelled} labelled at "
                  f"{summary.images_per_s:.1f} images/s" + "".join(f", {n} {what}" for what, n in others.items() if n))
    _write_json(json_out, summary.to_json())


def main() -> None:
    """Console entry point: run the app, turning expected errors into one line and an exit code."""
    try:
        app()
    except EdgedetError as err:
        print(f"error: {' '.join(str(err).splitlines())}", file=sys.stderr)  # one line, whatever the input held
        sys.exit(err.exit_code)
    except OSError as err:  # a full disk, a read-only folder: which file and why, without a traceback
        print(f"error: {err.filename + ': ' if err.filename else ''}{err.strerror or err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)

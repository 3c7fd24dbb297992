"""The pipeline: every stage runs, the manifest lets a re-run skip or redo exactly what it should, the report."""

import json

from typer.testing import CliRunner

from edgedet.cli import app
from edgedet.devices.latency import predict_ms
from edgedet.devices.profile import get_profile
from edgedet.pipeline.run import PipelineConfig
from edgedet.space.archspec import ArchSpec

runner = CliRunner()
TINY = ["--set", "search.imgsz=64", "--set", "search.batch=8", "--set", "search.workers=0",
        "--set", "train.imgsz=96", "--set", "train.batch=8", "--set", "train.workers=0",
        "--set", "quantize.calib_images=4", "--set", "benchmark.runs=3", "--set", "benchmark.random_archs=0",
        "--set", "baselines.random=1", "--set", "baselines.archs=[ssdlite,lite0-scaled]",
        "--set", "baselines.prior_only=true",
        "--set", "quantize.baselines=true"]


def _pipeline(data, *extra):
    return runner.invoke(app, ["pipeline", "--device", "jetson", "--device", "raspi4", "--data", str(data),
                               "--fast", "--name", "p", "--json-out", "p.json", *TINY, *extra],
                         terminal_width=200)


def _stages(folder):
    return json.loads((folder / "manifest.json").read_text())["stages"]


def test_pipeline_runs_every_stage_then_skips_redoes_or_resumes_what_it_should(synthetic_small, in_tmp):
    result = _pipeline(synthetic_small)
    assert result.exit_code == 0, result.output
    folder = in_tmp / "runs/pipeline/p"
    first = _stages(folder)
    assert all(stage["status"] == "done" for stage in first.values()) and len(first) == 9
    for artefact in ("model.onnx", "model.json", "model.int8.onnx", "report.md", "plots/accuracy_vs_latency.png",
                     "plots/search.png", "plots/fp32_vs_int8.png", "search/arch.json", "train/best.pt"):
        assert (folder / artefact).exists(), artefact
    report = (folder / "report.md").read_text()
    assert "jetson predicted ms" in report and "raspi4 predicted ms" in report and "edgedet camera" in report
    random1, searched = (ArchSpec.parse(first["baselines"]["outputs"]["random1"]["arch"]),
                         ArchSpec.parse(first["search"]["outputs"]["arch"]))
    jetson = get_profile("jetson").latency_model()
    assert "| ssdlite fp32 |" in report and "| ssdlite int8 |" in report and "| random1 fp32 |" in report and abs(predict_ms(jetson, random1) / predict_ms(jetson, searched) - 1) <= 0.05
    scaled = ArchSpec.parse(first["baselines"]["outputs"]["lite0-scaled"]["arch"])
    assert scaled.ops == ArchSpec.default("lite0").ops and "| lite0-scaled fp32 |" in report
    assert json.loads((folder / "baselines/lite0-scaled/model.json").read_text())["imgsz"] == scaled.imgsz
    assert abs(predict_ms(jetson, scaled) - predict_ms(jetson, searched)) <= min(
        abs(predict_ms(jetson, scaled.with_imgsz(size)) - predict_ms(jetson, searched)) for size in range(64, 641, 32))
    assert "next: edgedet camera runs/pipeline/p/model.int8.onnx --source 0" in result.output
    assert (folder / "model.fp16.onnx").exists() and "| searched fp16 |" in report  # the jetson profile runs FP16
    prior_only = first["baselines"]["outputs"]["prior-only"]["arch"]  # θ ignored: what θ added, on the report
    assert "| prior-only fp32 |" in report and ArchSpec.parse(prior_only).imgsz == searched.imgsz
    reused = first["baselines"]["outputs"]["prior-only"]["checkpoint"] == first["train"]["outputs"]["checkpoint"]
    assert reused == (prior_only == str(searched))  # the search's own derivation is not trained twice
    assert "for **jetson-orin-nano** (fp16, Tensorrt, CUDA, CPU): `runs/pipeline/p/model.fp16.onnx`" in report
    numbers = json.loads((in_tmp / "p.json").read_text())
    assert numbers["median_ms"] > 0 and 0 <= numbers["AP"] <= 100

    again = _pipeline(synthetic_small)  # nothing changed: every stage is skipped
    assert again.exit_code == 0 and _stages(folder) == first

    changed = _pipeline(synthetic_small, "--set", "train.epochs=2")  # the search is kept, training onwards redone
    assert changed.exit_code == 0, changed.output
    redone = _stages(folder)
    assert redone["search"] == first["search"] and redone["train"]["settings"]["epochs"] == 2
    assert all(redone[s]["finished"] > first[s]["finished"] for s in ("train", "export", "quantize", "report"))
    assert redone["profile"]["finished"] == first["profile"]["finished"]

    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["stages"]["train"]["status"] = "running"  # as if Ctrl-C had hit during training
    (folder / "manifest.json").write_text(json.dumps(manifest))
    resumed = _pipeline(synthetic_small, "--set", "train.epochs=2")
    assert resumed.exit_code == 0 and "train: resuming" in resumed.output
    assert "search: done before, skipped" in resumed.output

    (folder / "report.md").unlink()
    rebuilt = runner.invoke(app, ["report", str(folder)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (folder / "report.md").exists()


def test_bad_override_is_a_clear_error(in_tmp):
    result = runner.invoke(app, ["pipeline", "--device", "jetson", "--set", "train-epochs=3"])
    assert result.exit_code != 0 and "use STAGE.KEY=VALUE" in str(result.exception or result.output)


def test_changing_the_devices_redoes_every_stage(tmp_path):
    """The pipeline's inputs (devices, targets, data, classes) are part of every stage's settings."""
    from edgedet.pipeline.run import Pipeline, PipelineConfig

    ran = []

    def run(config):
        pipeline = Pipeline(config, tmp_path)
        for name in ("profile", "search"):
            pipeline.run_stage(name, config.stage(name), lambda resume, n=name: ran.append(n) or {"n": n})

    run(PipelineConfig(devices=["jetson"], data="d", preset="fast"))
    run(PipelineConfig(devices=["jetson"], data="d", preset="fast"))
    assert ran == ["profile", "search"]  # the second run skipped both
    run(PipelineConfig(devices=["raspi4"], data="d", preset="fast"))
    assert ran == ["profile", "search"] * 2


def test_a_baseline_that_is_another_one_is_trained_once(in_tmp, monkeypatch):
    """Lite0 scaled to Lite0's own latency is Lite0 at its own size: one training serves both rows."""
    from edgedet.pipeline import stages
    from edgedet.pipeline.run import PipelineConfig

    trained = []
    monkeypatch.setattr(stages, "_train", lambda recipe, run, resume: trained.append(run.name) or
                        {"checkpoint": str(run / "best.pt"), "AP": 1.0, "AP50": 2.0, "log": ""})
    lite0 = ArchSpec.default("lite0")
    lite0_ms = predict_ms(get_profile("jetson").latency_model(), lite0)
    search = {"arch": str(lite0), "devices": [{"device": "jetson", "precision": "fp16", "predicted_ms": lite0_ms}]}
    archs = ["lite0", "lite0-scaled", "ssdlite"]
    config = PipelineConfig(["jetson"], "data", "full", overrides={"baselines": {"archs": archs, "prior_only": False}})
    searched = {"checkpoint": "train/best.pt", "AP": 3.0, "AP50": 4.0, "log": ""}
    out = stages.baselines_stage(config, in_tmp, {"search": search, "train": searched}, resume=False)
    # Lite0 is the searched model here and the scaled one is Lite0 at 320: only SSDlite (another head) trains
    assert trained == ["ssdlite"]
    assert out["lite0-scaled"]["arch"].startswith("lite0@320")
    assert out["lite0-scaled"]["checkpoint"] == out["lite0"]["checkpoint"] == "train/best.pt"
    # another searched model: Lite0 trains as a baseline, once for both of its names
    search["arch"] = str(ArchSpec("lite0", 320, ("k3_e3", *lite0.ops[1:])))
    trained.clear()
    out = stages.baselines_stage(config, in_tmp, {"search": search, "train": searched}, resume=False)
    assert trained == ["lite0", "ssdlite"] and out["lite0-scaled"]["checkpoint"] == out["lite0"]["checkpoint"]


def test_an_int8_tensorrt_device_gets_tensorrts_int8_and_this_host_the_cpu_flavour(monkeypatch):
    from edgedet.devices.profile import DeviceProfile
    from edgedet.pipeline import stages

    orin = DeviceProfile(id="orin", description="", latency={"source": "analytic"}, runtime={
        "precision": "int8", "providers": ["TensorrtExecutionProvider", "CPUExecutionProvider"]})
    monkeypatch.setattr(stages, "get_profile", lambda name: orin)
    config = PipelineConfig(devices=["orin"], data="d", preset="fast")
    deploy = stages.deployment(config, {"onnx": "m.onnx", "fp16": None},
                               {"onnx": "m.int8.onnx", "device_onnx": "m.int8.tensorrt.onnx"})
    assert deploy["device"] == {"id": "orin", "precision": "int8", "runtime": "Tensorrt, CPU",
                                "file": "m.int8.tensorrt.onnx"}
    assert deploy["host"]["file"] == "m.int8.onnx"

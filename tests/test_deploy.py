"""Deploy: export checked against torch, INT8 with its accuracy guard, ONNX evaluation, benchmark, bad input."""

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from edgedet.cli import app
from edgedet.data.synthetic import make_synthetic
from edgedet.data.annotations import find_split, load_coco
from edgedet.deploy import quantize_model, train_slices
from edgedet.detect.predict import TorchPredictor
from edgedet.errors import UsageError
from edgedet.evaluate.images import split_images
from edgedet.export.onnx_export import HALF_TOLERANCE, export_checkpoint
from edgedet.export.quantize import calibration_tensors, node_sensitivity, quantize_qdq
from edgedet.runtime.benchmark import benchmark_models
from edgedet.runtime.onnx_detector import OnnxDetector
from edgedet.runtime.session import make_session, random_feed
from edgedet.train.checkpoint import load_detector
from edgedet.train.engine import TrainConfig, train

runner = CliRunner()


def test_sidecar_carries_what_a_runtime_needs(exported, checkpoint):
    card = json.loads(exported.with_suffix(".json").read_text())
    assert card["arch"].startswith("lite0@96:") and card["imgsz"] == 96 and card["precision"] == "fp32"
    assert card["class_names"] == ["circle", "square", "triangle"] and len(card["category_ids"]) == 3
    assert "letterbox" in card["input"] and "(1, N, 4 + K)" in card["output"]["layout"]
    assert card["provenance"]["checkpoint"] == str(checkpoint)


def _found_in(a, b) -> np.ndarray:
    """For each detection of `a`, whether `b` holds it: same class, box within 0.05 px, score within 1e-4."""
    gap = np.abs(a.boxes_xyxy[:, None] - b.boxes_xyxy[None]).max(-1)
    gap[(a.labels[:, None] != b.labels[None]) | (np.abs(a.scores[:, None] - b.scores[None]) > 1e-4)] = np.inf
    return gap.min(1) < 0.05


def _assert_onnx_predicts_what_torch_predicts(checkpoint, onnx_model, data, conf: float = 0.01) -> None:
    """Same scores; same boxes, except where near-tied scores at the max-detections tail keep different ones (the
    tiny test model scores many boxes alike), so every box clearly above that tail, and most of the tail, match."""
    torch_predict = TorchPredictor(load_detector(checkpoint)[0], conf=conf)
    onnx_predict = OnnxDetector(onnx_model, conf=conf)
    for path in split_images(data, "val")[:3]:
        image = cv2.imread(str(path))
        a, b = torch_predict(image), onnx_predict(image)
        assert len(a) == len(b) > 0
        np.testing.assert_allclose(np.sort(a.scores), np.sort(b.scores), atol=1e-4)
        for x, y in ((a, b), (b, a)):
            found = _found_in(x, y)
            assert found[x.scores > x.scores.min() + 1e-3].all() and found.mean() > 0.8


def test_onnx_runtime_predicts_what_torch_predicts(exported, checkpoint, synthetic_small):
    _assert_onnx_predicts_what_torch_predicts(checkpoint, exported, synthetic_small)


def test_ssdlite_baseline_trains_exports_runs_in_onnx_runtime_as_in_torch_and_quantizes(synthetic_small, tmp_path):
    """torchvision's SSDlite on the Lite0 backbone goes through the same engine, export, sidecar and runtime."""
    train(TrainConfig.from_dict(dict(arch="lite0@96", head="ssdlite", data=str(synthetic_small), epochs=1, batch=8,
                                     workers=0, eval_every=100, max_eval_images=2)), tmp_path)
    result = export_checkpoint(tmp_path / "last.pt", tmp_path / "ssdlite.onnx")
    assert result.relative_diff < 1e-4
    card = json.loads(result.card_path.read_text())
    assert card["output"]["decode"] == "boxes" and card["arch"].startswith("lite0@96:")
    _assert_onnx_predicts_what_torch_predicts(tmp_path / "last.pt", result.onnx_path, synthetic_small, conf=0.001)
    calibration = calibration_tensors(split_images(synthetic_small, "train"), 96, 4)
    onnx_model = result.onnx_path.read_bytes()
    fp32, int8 = (make_session(model).run(None, {"images": calibration[0]})[0]
                  for model in (onnx_model, quantize_qdq(onnx_model, calibration)))
    assert abs(int8[..., 4:] - fp32[..., 4:]).max() < 0.1  # probabilities not rounded on the boxes' pixel scale


def test_half_export_computes_in_fp16_and_matches_fp32_within_its_tolerance(exported, checkpoint, in_tmp):
    clash = runner.invoke(app, ["export", str(checkpoint), "--half", "--out", "h.onnx", "--json-out", "h.json"])
    assert isinstance(clash.exception, UsageError) and "is the sidecar of h.onnx" in str(clash.exception)
    result = runner.invoke(app, ["export", str(checkpoint), "--half", "--out", "h.onnx", "--json-out", "n.json"])
    assert result.exit_code == 0, result.output
    graph = onnx.load(str(in_tmp / "h.onnx")).graph
    conv_weights = {n.input[1] for n in graph.node if n.op_type == "Conv"}
    assert {i.data_type for i in graph.initializer if i.name in conv_weights} == {onnx.TensorProto.FLOAT16}
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # FP32 in and out, FP16 inside
    card = json.loads((in_tmp / "h.json").read_text())
    assert card["precision"] == "fp16" and card["input"]["dtype"] == card["output"]["dtype"] == "float32"
    image = np.random.default_rng(0).uniform(0, 255, (1, 3, 96, 96)).astype(np.float32)
    fp32, fp16 = (make_session(str(m)).run(None, {"images": image})[0] for m in (exported, in_tmp / "h.onnx"))
    assert np.abs(fp16 - fp32).max() / max(1.0, np.abs(fp32).max()) < HALF_TOLERANCE  # 1e-2 of the largest output


def test_export_at_another_size_and_mismatched_sidecar_is_refused(checkpoint, tmp_path):
    export_checkpoint(checkpoint, tmp_path / "m128.onnx", imgsz=128)
    assert OnnxDetector(tmp_path / "m128.onnx").card.imgsz == 128
    card = json.loads((tmp_path / "m128.json").read_text())
    (tmp_path / "m128.json").write_text(json.dumps(card | {"imgsz": 96}))
    with pytest.raises(UsageError, match="the model takes .* but its sidecar says 96x96"):
        OnnxDetector(tmp_path / "m128.onnx")


def test_eval_compares_checkpoint_and_onnx_on_the_same_images(exported, checkpoint, synthetic_small, in_tmp):
    result = runner.invoke(app, ["eval", str(checkpoint), "--compare", str(exported), "--data", str(synthetic_small),
                                 "--json-out", "e.json"], terminal_width=200)
    assert result.exit_code == 0, result.output
    numbers = json.loads((in_tmp / "e.json").read_text())
    assert abs(numbers["AP"] - numbers["model.onnx.AP"]) < 0.5  # same decode; only float rounding differs
    assert (in_tmp / "runs/eval/1/detections.json").exists() and (in_tmp / "runs/eval/1/detections1.json").exists()


def test_quantize_writes_int8_with_its_guard(exported, synthetic_small, tmp_path):
    out = tmp_path / "model.int8.onnx"
    result = quantize_model(exported, synthetic_small, out, calib_images=16, max_ap_drop=100.0)
    assert result.kept_fp32 == [] and len(result.trials) == 1
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["precision"] == "int8" and card["provenance"]["calibration"]["images"] == 16
    assert OnnxDetector(out)(cv2.imread(str(split_images(synthetic_small, "val")[0]))) is not None


def test_jetson_int8_is_tensorrts_flavour_every_zero_point_0_int8_activations_no_qdq_inside_conv_act(
        exported, synthetic_small, in_tmp):
    result = runner.invoke(app, ["quantize", str(exported), "--data", str(synthetic_small), "--device", "jetson",
                                 "--calib-images", "8", "--max-ap-drop", "100", "--out", "trt.onnx",
                                 "--json-out", "q.json"])
    assert result.exit_code == 0, result.output
    assert json.loads((in_tmp / "q.json").read_text())["flavour"] == "tensorrt"
    assert json.loads((in_tmp / "trt.json").read_text())["quantization"]["flavour"] == "tensorrt"
    graph = onnx.load(str(in_tmp / "trt.onnx")).graph
    constants = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    qdq = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq and all(not constants[n.input[2]].any() for n in qdq)  # symmetric: every zero point 0
    assert {constants[n.input[2]].dtype for n in qdq if n.op_type == "QuantizeLinear"} == {np.dtype(np.int8)}
    producers = {out: node for node in graph.node for out in node.output}
    readers = {name: node.op_type for node in graph.node for name in node.input}
    conv_then_act = [n for n in qdq if n.op_type == "QuantizeLinear" and producers[n.input[0]].op_type == "Conv"
                     and {readers.get(d.output[0]) for d in qdq if d.input[0] == n.output[0]} & {"Clip", "Relu"}]
    assert conv_then_act == []  # TensorRT fuses conv + activation; a Q/DQ between them would split it
    assert OnnxDetector(in_tmp / "trt.onnx")(cv2.imread(str(split_images(synthetic_small, "val")[0]))) is not None


def test_guard_keeps_the_most_sensitive_nodes_in_fp32_until_within_budget(exported, synthetic_small, tmp_path):
    # an impossible budget (INT8 must gain 100 AP) walks the whole schedule: 1, 2, 4 outputs kept in FP32
    result = quantize_model(exported, synthetic_small, tmp_path / "q.onnx", calib_images=8, max_ap_drop=-100.0)
    assert [t["kept_fp32"] for t in result.trials] == [0, 1, 2, 4, 8, 16, 32]  # up to max_kept outputs
    assert result.int8_ap == max(t["AP"] for t in result.trials)  # out of budget: the best AP it found
    assert result.kept_fp32 == [] or all(name.startswith("/") for name in result.kept_fp32)
    card = json.loads((tmp_path / "q.json").read_text())  # out of budget: said where the model goes, not only here
    assert card["quantization"]["within_budget"] is False and not result.within_budget
    assert card["provenance"]["val"]["int8_AP"] == result.val_int8_ap  # the AP reported is val's, chosen on train


def test_calibration_and_the_guard_are_seeded_disjoint_draws_from_train(synthetic_small):
    train = find_split(synthetic_small, "train")
    calibration, guard = train_slices(train, 20, 100, seed=0)
    annotations, folder = train
    coco = load_coco(annotations)
    calibrated_ids = {i for i in coco.getImgIds() if folder / coco.imgs[i]["file_name"] in calibration}
    assert len(calibrated_ids) == 20 and len(guard) == 12 and not calibrated_ids & set(guard)  # 32 train images
    assert train_slices(train, 20, 100, seed=0) == (calibration, guard)  # seeded
    assert train_slices(train, 20, 100, seed=1)[0] != calibration
    calibration, guard = train_slices(train, 32, 10, seed=0)  # calibration would take all: shared
    assert len(calibration) == len(guard) == 16


def test_sensitivity_ranks_conv_outputs(exported, synthetic_small):
    model = exported.read_bytes()
    calibration = calibration_tensors(split_images(synthetic_small, "train"), 96, 4)
    groups = node_sensitivity(model, quantize_qdq(model, calibration), calibration)
    assert groups and any(name.endswith("/Conv") for group in groups for name in group)


def test_benchmark_times_edgedet_models_and_peers_in_one_run(exported, synthetic_small, tmp_path):
    peer = tmp_path / "peer.onnx"  # no sidecar: timed as a peer, on a random input
    shutil.copy(exported, peer)
    images = [cv2.imread(str(p)) for p in split_images(synthetic_small, "val")[:2]]
    ours, theirs = benchmark_models([exported, peer], runs=6, warmup=1, images=images)
    assert ours.median_ms > 0 and ours.pre_ms > 0 and ours.post_ms >= 0 and ours.arch.startswith("lite0@96")
    assert theirs.pre_ms is None and theirs.arch is None and theirs.p99_ms >= theirs.median_ms


def _edgedet(*args, cwd):
    return subprocess.run([sys.executable, "-m", "edgedet", *args], capture_output=True, text=True, cwd=cwd)


def test_bad_deploy_input_is_one_line_and_nothing_half_written(exported, checkpoint, in_tmp):
    (in_tmp / "notes.onnx").write_text("not a model")
    shutil.copy(exported, in_tmp / "bare.onnx")
    empty = in_tmp / "empty"
    make_synthetic(empty, train_images=2, val_images=1, size=200)
    for image in (empty / "train").iterdir():
        image.write_bytes(b"garbage")
    cases = [
        (["benchmark", "notes.onnx"], "not a loadable ONNX model"),
        (["eval", "bare.onnx"], "no sidecar bare.json"),
        (["quantize", str(exported), "--data", str(empty), "--out", "q.onnx"], "no readable calibration images"),
        (["export", "notes.onnx"], "not an edgedet checkpoint"),
    ]
    for args, message in cases:
        result = _edgedet(*args, cwd=in_tmp)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1
    assert not (in_tmp / "q.onnx").exists() and not (in_tmp / "q.json").exists()


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_every_calibration_method_gives_a_runnable_int8_model(exported, synthetic_small, method):
    calibration = calibration_tensors(split_images(synthetic_small, "train"), 96, 4)
    session = make_session(quantize_qdq(exported.read_bytes(), calibration, method=method))
    assert session.run(None, random_feed(session))[0].shape == (1, 12 * 12 + 6 * 6 + 3 * 3, 7)


def test_unknown_calibration_method_is_refused(exported):
    with pytest.raises(UsageError, match="--method histogram: use one of minmax, entropy, percentile"):
        quantize_qdq(exported.read_bytes(), [], method="histogram")

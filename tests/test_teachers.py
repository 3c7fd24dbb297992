"""Teachers: every peer adapter decodes real detections, the registry recognises models by name and by shapes,
unknown layouts fail with the way out, edgedet's own exports teach, and classes map by name."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgedet.errors import UsageError
from edgedet.runtime.onnx_detector import OnnxDetector
from edgedet.runtime.peers import ADAPTERS, FastestDet, NanoDetM, PicoDet, YoloX, load_teacher
from edgedet.runtime.postprocess import anchor_points
from edgedet.runtime.preprocess import letterbox, read_bgr
from edgedet.runtime.sidecar import ModelCard, sidecar_path

from conftest import COCO_MINI, SHARED

PEERS = SHARED / "peers"
needs_shared = pytest.mark.skipif(not PEERS.is_dir() or not COCO_MINI.is_dir(), reason="needs ../shared")
# (file, its main object as COCO annotates it): one portrait and one landscape image, so a letterbox or stretch
# mapped back the wrong way shows
IMAGES = {"000000000724.jpg": ("stop sign", [120, 72, 255, 225]), "000000000785.jpg": ("person", [281, 45, 499, 391])}


def _iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@needs_shared
@pytest.mark.parametrize("file, adapter, size", [
    ("fastestdet/FastestDet.onnx", FastestDet, 352), ("nanodet-m/nanodet.onnx", NanoDetM, 320),
    ("nanodet-m/nanodet_m.onnx", NanoDetM, 416), ("picodet-s/picodet_s_416.onnx", PicoDet, 416),
    ("picodet-s/picodet_s_512.onnx", PicoDet, 512), ("yolox-nano/yolox_nano.onnx", YoloX, 640)])
def test_each_adapter_finds_the_main_object_where_coco_has_it(file, adapter, size):
    teacher = load_teacher(PEERS / file, conf=0.3)
    assert type(teacher) is adapter and teacher.input_size == size and len(teacher.class_names) == 80
    for name, (expected_class, expected_box) in IMAGES.items():
        found = teacher(read_bgr(COCO_MINI / "val2017" / name))
        assert len(found) and found.scores[0] > 0.5 and teacher.class_names[found.labels[0]] == expected_class, name
        assert _iou(found.boxes_xyxy[0], expected_box) > 0.85, (name, found.boxes_xyxy[0])


@needs_shared
def test_a_renamed_peer_is_recognised_by_its_shapes(tmp_path):
    peers = {"picodet-s/picodet_s_416.onnx": PicoDet, "nanodet-m/nanodet.onnx": NanoDetM,
             "yolox-nano/yolox_nano.onnx": YoloX, "fastestdet/FastestDet.onnx": FastestDet}
    for index, (file, adapter) in enumerate(peers.items()):
        renamed = tmp_path / f"teacher{index}.onnx"
        renamed.symlink_to(PEERS / file)
        assert type(load_teacher(renamed)) is adapter


def _constant_model(path, imgsz: int, raw: np.ndarray) -> None:
    """An ONNX model that takes (1, 3, S, S) and always outputs ``raw``."""
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, imgsz, imgsz])
    output = helper.make_tensor_value_info("raw", TensorProto.FLOAT, list(raw.shape))
    node = helper.make_node("Constant", [], ["raw"], value=numpy_helper.from_array(raw))
    model = helper.make_model(helper.make_graph([node], "constant", [image], [output]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.fixture
def edgedet_export(tmp_path):
    """An edgedet-contract model at 64 px (classes person, widget) that sees one person at (12, 12, 44, 44)."""
    points, strides = anchor_points(64)
    raw = np.full((1, len(points), 6), -10.0, np.float32)
    point = int(np.argmin(np.abs(points - 28).sum(1)))  # the stride-8 point centred at (28, 28)
    raw[0, point, :4] = np.log(16 / strides[point])  # 16 px to each side
    raw[0, point, 4] = 5.0  # person
    path = tmp_path / "model.onnx"
    _constant_model(path, 64, raw)
    card = ModelCard(arch="test", imgsz=64, class_names=["person", "widget"], category_ids=[1, 1000])
    sidecar_path(path).write_text(json.dumps(card.to_json()))
    return path


def test_an_edgedet_export_teaches_the_classes_it_has_by_name(edgedet_export, capsys):
    image = np.zeros((64, 64, 3), np.uint8)
    assert isinstance(load_teacher(edgedet_export), OnnxDetector)
    teacher = load_teacher(edgedet_export, class_names=["car", "Person"])
    assert teacher.class_names == ["person"]
    assert capsys.readouterr().err.strip() == f"warning: {edgedet_export} cannot provide car: no boxes of that " \
                                               "class from it"
    found = teacher(image)
    assert found.labels.tolist() == [0] and np.allclose(found.boxes_xyxy[0], [12, 12, 44, 44], atol=0.1)
    assert len(load_teacher(edgedet_export, class_names=["widget"])(image)) == 0  # re-indexed: widget is 0 now
    with pytest.raises(UsageError, match="detects none of car, bus; it knows person, widget"):
        load_teacher(edgedet_export, class_names=["car", "bus"])


def test_an_unknown_layout_says_which_adapters_exist_and_how_to_name_one(edgedet_export, tmp_path):
    unknown = tmp_path / "other.onnx"
    unknown.write_bytes(edgedet_export.read_bytes())  # no sidecar beside it
    with pytest.raises(UsageError) as error:
        load_teacher(unknown)
    message = str(error.value)
    assert "no adapter fits this model" in message and "outputs [[1, 84, 6]]" in message and "\n" not in message
    assert f"known adapters: {', '.join(ADAPTERS)}" in message and "--teacher model.onnx:yolox" in message
    with pytest.raises(UsageError, match="not the yolox layout"):
        load_teacher(f"{unknown}:yolox")
    with pytest.raises(UsageError, match="unknown adapter 'ssd'"):
        load_teacher(f"{unknown}:ssd")


@needs_shared
def test_peer_classes_map_by_name_and_missing_ones_are_reported(capsys):
    teacher = load_teacher(f"{PEERS / 'yolox-nano/yolox_nano.onnx'}:YOLOX", class_names=["motorbike", "person",
                                                                                             "forklift"])
    assert type(teacher) is YoloX and teacher.class_names == ["motorcycle", "person"]
    assert "cannot provide forklift" in capsys.readouterr().err
    found = teacher(read_bgr(COCO_MINI / "val2017" / "000000000785.jpg"))
    assert len(found) and set(found.labels.tolist()) <= {0, 1} and found.labels[0] == 1  # the person, re-indexed
    with pytest.raises(UsageError, match="detects none of forklift"):
        load_teacher(PEERS / "picodet-s/picodet_s_416.onnx", class_names=["forklift"])


@needs_shared
def test_eval_scores_teachers_and_their_fusion_side_by_side(tmp_path):
    """A peer by file name, the same peer with its adapter named, and two fused: the fusion is another model."""
    from typer.testing import CliRunner

    from edgedet.cli import app

    pico, yolox = PEERS / "picodet-s/picodet_s_416.onnx", PEERS / "yolox-nano/yolox_nano.onnx"
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["eval", str(pico), "--compare", f"{pico}:picodet", "--compare",
                                      f"{pico}+{yolox}", "--data", str(COCO_MINI), "--max-images", "6",
                                      "--name", "teachers", "--json-out", str(out)])
    assert result.exit_code == 0, result.output
    numbers = json.loads(out.read_text())
    assert numbers["AP"] > 20 and numbers["picodet_s_416.onnx:picodet.AP"] == numbers["AP"]
    fused = numbers["picodet_s_416.onnx+yolox_nano.onnx.AP"]
    assert fused > 20 and fused != numbers["AP"]


@needs_shared
def test_benchmark_runs_a_peer_as_its_adapter_does_and_times_its_pre_and_post_processing():
    from edgedet.runtime.benchmark import benchmark_models

    image = read_bgr(COCO_MINI / "val2017" / "000000000724.jpg")
    row, = benchmark_models([f"{PEERS / 'yolox-nano/yolox_nano.onnx'}:yolox"], runs=2, warmup=1, images=[image])
    assert row.model.endswith(":yolox") and row.precision == "fp32"
    assert row.pre_ms > 0 and row.post_ms > 0 and row.median_ms > 0


def test_a_bare_graph_is_timed_but_not_taken_for_a_detector(tmp_path):
    from edgedet.runtime.benchmark import benchmark_models

    graph = tmp_path / "block.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "block", [x], [y])),
              graph)
    row, = benchmark_models([graph], runs=2, warmup=1, images=[np.zeros((8, 8, 3), np.uint8)])
    assert row.pre_ms is None and row.median_ms > 0


@needs_shared
def test_eval_classes_scores_an_80_class_peer_on_person_alone(tmp_path):
    from edgedet.evaluate.images import evaluate_predictor

    peer = load_teacher(PEERS / "picodet-s/picodet_s_416.onnx")
    annotations, images = COCO_MINI / "annotations/instances_val2017.json", COCO_MINI / "val2017"
    person, _ = evaluate_predictor(peer, annotations, images, peer.class_names, max_images=4, classes=["Person"])
    every, _ = evaluate_predictor(peer, annotations, images, peer.class_names, max_images=4)
    assert list(person.per_class) == ["person"] and len(every.per_class) > 1
    with pytest.raises(UsageError, match="among unicorn"):
        evaluate_predictor(peer, annotations, images, peer.class_names, max_images=1, classes=["unicorn"])


@needs_shared
def test_dense_scores_every_point_and_class_and_agrees_with_the_detections():
    teacher = load_teacher(PEERS / "yolox-nano/yolox_nano.onnx", conf=0.3, size=320, class_names=["person", "dog"])
    assert teacher.input_size == 320
    image = read_bgr(COCO_MINI / "val2017" / "000000000785.jpg")
    boxes, scores = teacher.dense(image)
    points = anchor_points(320)[0]
    assert boxes.shape == (len(points), 4) and scores.shape == (len(boxes), 2)
    found = teacher(image)
    best = scores[:, 0].argmax()  # the person column: its best point is the top detection, in image pixels
    assert found.labels[0] == 0 and scores[best, 0] == pytest.approx(found.scores[0], abs=1e-6)
    assert np.allclose(boxes[best], found.boxes_xyxy[0], atol=1e-3)
    square = np.ascontiguousarray(letterbox(image, 320)[0][0].transpose(1, 2, 0)[:, :, ::-1]).astype(np.uint8)
    boxes, scores = teacher.dense(square)  # on the model's own input, point i is the student's anchor point i
    confident = scores.max(1) > 0.5
    inside = (points > boxes[:, :2]).all(1) & (points < boxes[:, 2:]).all(1)
    assert confident.sum() >= 3 and inside[confident].all()

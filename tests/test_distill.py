"""Online dense distillation: the teacher must see the student's grid, classes map by name, the loss pulls the
student toward the teacher's scores and boxes, and a training run learns with it."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgedet.data.formats import COCO80_NAMES
from edgedet.detect.loss import DetectionLoss
from edgedet.errors import UsageError
from edgedet.runtime.peers import load_teacher
from edgedet.runtime.postprocess import anchor_points
from edgedet.runtime.preprocess import letterbox, read_bgr
from edgedet.train.config import TrainConfig
from edgedet.train.distill import DenseTeacher, grid_blocks, level_sides, to_student_grid
from edgedet.train.engine import train

from conftest import COCO_MINI, SHARED

YOLOX = SHARED / "peers" / "yolox-nano" / "yolox_nano.onnx"
PICODET = SHARED / "peers" / "picodet-s" / "picodet_s_416.onnx"
needs_shared = pytest.mark.skipif(not (YOLOX.is_file() and PICODET.is_file() and COCO_MINI.is_dir()),
                                  reason="needs ../shared")


@needs_shared
def test_a_teacher_off_the_students_grid_is_refused_with_the_way_out():
    with pytest.raises(UsageError, match="whole fraction of one. YOLOX runs at any size"):
        DenseTeacher(str(PICODET), ["person"], 320)


@needs_shared
def test_the_teacher_fills_the_students_classes_it_knows_by_name():
    teacher = DenseTeacher(str(YOLOX), ["dog", "zebra crossing", "motorbike"], 320)  # motorbike is COCO's motorcycle
    rgb = letterbox(read_bgr(COCO_MINI / "val2017" / "000000000724.jpg"), 320)[0][0].astype(np.uint8)
    images = torch.from_numpy(np.stack([rgb, rgb[:, :, ::-1].copy()]))  # the second one mirrored
    targets = teacher.annotate(images, [{"boxes": torch.zeros(0, 4)}, {"boxes": torch.zeros(0, 4)}])
    points = len(anchor_points(320)[0])
    assert targets[0]["teacher_scores"].shape == (points, 3) and targets[1]["teacher_boxes"].shape == (points, 4)
    assert targets[0]["teacher_classes"].tolist() == [True, False, True]
    every_class = load_teacher(YOLOX, size=320).dense(np.ascontiguousarray(rgb.transpose(1, 2, 0)[:, :, ::-1]))[1]
    for column, name in ((0, "dog"), (2, "motorcycle")):
        assert np.allclose(targets[0]["teacher_scores"][:, column], every_class[:, COCO80_NAMES.index(name)])
    assert targets[0]["teacher_scores"][:, 1].abs().sum() == 0
    assert not torch.equal(targets[0]["teacher_scores"], targets[1]["teacher_scores"])  # each image its own


def test_each_student_grid_takes_the_teacher_grid_of_its_size_else_the_finest_it_divides():
    assert grid_blocks([40, 20, 10], [40, 20, 10]) == [(0, 1), (1, 1), (2, 1)]
    assert grid_blocks([40, 20, 10], [80, 40, 20]) == [(1, 1), (2, 1), (2, 2)]  # the teacher at twice the size
    assert grid_blocks([36, 18, 9], [40, 20, 10]) is None


def test_a_block_of_teacher_cells_hands_the_student_its_most_confident_point():
    sides, blocks = [4, 2], [(1, 1), (0, 2), (1, 2)]  # a student grid of 2 from each, and one of 1
    scores = np.zeros((4 * 4 + 2 * 2, 2), np.float32)
    boxes = np.arange(len(scores) * 4, dtype=np.float32).reshape(-1, 4)
    scores[4 * 1 + 1, 0] = 0.9  # the 4-grid's row 1, column 1: the top-left block
    scores[4 * 2 + 3, 1] = 0.8  # row 2, column 3: the bottom-right block
    scores[16 + 2, 0] = 0.7  # the 2-grid's row 1, column 0
    picked_boxes, picked_scores = to_student_grid(boxes, scores, sides, blocks)
    assert picked_scores.shape == (4 + 4 + 1, 2) and picked_boxes.shape == (9, 4)
    assert np.array_equal(picked_scores[:4], scores[16:])  # as many cells a side: the same points, in order
    assert picked_scores[4, 0] == 0.9 and picked_scores[7, 1] == 0.8 and picked_scores[5:7].max() == 0
    assert np.array_equal(picked_boxes[4], boxes[5]) and np.array_equal(picked_boxes[7], boxes[11])
    assert picked_scores[8, 0] == 0.7 and np.array_equal(picked_boxes[8], boxes[18])


@needs_shared
def test_a_teacher_at_twice_the_size_teaches_each_student_grid_from_the_next_coarser_one():
    teacher = DenseTeacher(str(YOLOX), ["dog", "person"], 64, scale=2)
    rgb = letterbox(read_bgr(COCO_MINI / "val2017" / "000000000724.jpg"), 64)[0][0].astype(np.uint8)
    target = teacher.annotate(torch.from_numpy(rgb[None].copy()), [{"boxes": torch.zeros(0, 4)}])[0]
    assert target["teacher_scores"].shape == (len(anchor_points(64)[0]), 2)
    big = load_teacher(YOLOX, size=128, class_names=["dog", "person"])
    boxes, scores = big.dense(np.ascontiguousarray(rgb.transpose(1, 2, 0)[:, :, ::-1]))
    stride8 = level_sides(64)[0] ** 2
    teacher16 = slice(level_sides(128)[0] ** 2, level_sides(128)[0] ** 2 + stride8)
    assert np.allclose(target["teacher_scores"][:stride8], scores[teacher16])
    assert np.allclose(target["teacher_boxes"][:stride8], boxes[teacher16])  # in the student's pixels


def _distill_loss(logits: torch.Tensor, teacher_scores: torch.Tensor, known: list[bool]) -> torch.Tensor:
    points, strides = (torch.from_numpy(a) for a in anchor_points(64))
    raw = torch.cat([torch.zeros(1, len(points), 4), logits[None]], -1)  # boxes of 8 strides around each point
    half = strides[:, None]  # exp(0) * stride on each side
    target = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
              "teacher_scores": teacher_scores, "teacher_classes": torch.tensor(known),
              "teacher_boxes": torch.cat([points - half, points + half], 1)}
    return DetectionLoss(len(known))(raw, points, strides, [target])["loss_distill"]


def test_the_distillation_loss_is_zero_at_the_teachers_scores_and_ignores_classes_it_lacks():
    points = len(anchor_points(64)[0])
    scores = torch.rand(points, 2) * 0.9 + 0.05
    logits = torch.logit(scores)
    assert _distill_loss(logits, scores, [True, True]).item() == pytest.approx(0.0, abs=1e-6)
    moved = logits.clone().requires_grad_(True)
    loss = _distill_loss(moved + torch.tensor([1.0, 0.0]), scores, [True, True])
    loss.backward()
    assert loss.item() > 0.01 and (moved.grad[:, 0] > 0).all()  # descending lowers the overconfident class
    assert _distill_loss(logits + torch.tensor([0.0, 3.0]), scores, [True, False]).item() == pytest.approx(0, abs=1e-6)


@needs_shared
def test_training_with_a_dense_teacher_logs_its_loss_and_finishes(tmp_path):
    from edgedet.data.subset import carve_coco_subset

    data = carve_coco_subset(COCO_MINI, "train2017", tmp_path / "data", classes=["person", "dog"], max_images=8)
    val = carve_coco_subset(COCO_MINI, "val2017", tmp_path / "val", classes=["person", "dog"], max_images=4)
    shutil.move(val / "val2017", data / "val2017")
    shutil.move(val / "annotations" / "instances_val2017.json", data / "annotations")
    config = TrainConfig(arch="lite0@64", data=[str(data)], epochs=2, batch=4, workers=0, distill=str(YOLOX),
                         distill_scale=2, eval_every=2, max_eval_images=4, pretrained=False)
    final = train(config, tmp_path / "run")
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].split(",")[3] == "loss_distill" and all(float(row.split(",")[3]) > 0 for row in log[1:])
    assert np.isfinite(final["AP"])
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["distill"], saved["distill_scale"]) == (str(YOLOX), 2)


def test_distillation_is_refused_for_the_ssdlite_head_and_a_teacher_smaller_than_the_student():
    with pytest.raises(UsageError, match="dense distillation teaches edgedet's head"):
        TrainConfig.from_dict({"data": ["x"], "head": "ssdlite", "distill": "t.onnx"})
    with pytest.raises(UsageError, match="distill_scale 0: give a whole number >= 1"):
        TrainConfig.from_dict({"data": ["x"], "distill": "t.onnx", "distill_scale": 0})


@needs_shared
def test_a_teacher_that_knows_none_of_the_classes_is_one_line_and_exit_2(synthetic_small, in_tmp):
    result = subprocess.run([sys.executable, "-m", "edgedet", "train", "--data", str(synthetic_small), "--epochs",
                             "1", "--distill", str(YOLOX)], capture_output=True, text=True, cwd=in_tmp)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "detects none of" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr

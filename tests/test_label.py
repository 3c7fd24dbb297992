"""Weighted box fusion on hand-made boxes, and ``label_source`` on an image folder, a video and a dataset whose
ground truth wins; resuming, refusing another output, unreadable images, the CLI."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from edgedet.cli import app
from edgedet.errors import UsageError
from edgedet.label.fusion import weighted_box_fusion
from edgedet.label.labeler import RECORDS, label_source
from edgedet.runtime.detections import Detections

from conftest import COCO_MINI, SHARED

FASTEST = SHARED / "peers" / "fastestdet" / "FastestDet.onnx"
PICODET = SHARED / "peers" / "picodet-s" / "picodet_s_416.onnx"
YOLOX = SHARED / "peers" / "yolox-nano" / "yolox_nano.onnx"
VIDEO = SHARED / "video" / "vtest_480x360.mp4"
needs_shared = pytest.mark.skipif(not (SHARED / "peers").is_dir() or not COCO_MINI.is_dir() or not VIDEO.is_file(),
                                  reason="needs ../shared")
STOP_SIGN, SKIER = "000000000724.jpg", "000000000785.jpg"  # a stop sign (and a truck); a person on skis


def _detections(boxes, scores, labels) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                      np.array(labels, np.int64))


def test_two_overlapping_boxes_fuse_to_their_score_weighted_mean():
    fused = weighted_box_fusion([_detections([[0, 0, 10, 10]], [0.9], [0]),
                                 _detections([[1, 1, 11, 11]], [0.3], [0])])
    assert len(fused) == 1 and fused.labels.tolist() == [0]
    assert np.allclose(fused.boxes_xyxy[0], [0.25, 0.25, 10.25, 10.25]) and np.isclose(fused.scores[0], 0.6)


def test_a_box_one_of_two_models_sees_keeps_half_its_score_and_classes_never_fuse():
    fused = weighted_box_fusion([_detections([[0, 0, 10, 10], [50, 50, 60, 60]], [0.8, 0.6], [0, 0]),
                                 _detections([[0, 0, 10, 10]], [0.8], [1])])
    order = np.lexsort((fused.scores, fused.labels))
    assert fused.labels[order].tolist() == [0, 0, 1] and np.allclose(fused.scores[order], [0.3, 0.4, 0.4])
    weighted = weighted_box_fusion([_detections([[0, 0, 10, 10]], [0.8], [0]), Detections.empty()], weights=[3, 1])
    assert np.isclose(weighted.scores[0], 0.6)  # 3 * 0.8 / (3 + 1)


def test_a_models_own_duplicate_does_not_lower_its_best_box():
    fused = weighted_box_fusion([_detections([[0, 0, 10, 10], [0, 0, 10, 11]], [0.9, 0.1], [0, 0])])
    assert len(fused) == 1 and np.isclose(fused.scores[0], 0.9) and fused.boxes_xyxy[0, 3] == pytest.approx(10.1)


@pytest.fixture
def images(tmp_path):
    """A folder with two coco-mini val images (in a subfolder) and one broken file."""
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(COCO_MINI / "val2017" / STOP_SIGN, folder / STOP_SIGN)
    shutil.copy(COCO_MINI / "val2017" / SKIER, folder / "sub" / SKIER)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return folder


def _coco(out):
    return json.loads((out / "annotations" / "instances_train.json").read_text())


@needs_shared
def test_an_image_folder_becomes_a_scored_coco_dataset_and_a_rerun_resumes(images, tmp_path, capsys):
    out = tmp_path / "out"
    first = label_source(images, [FASTEST], out, classes=["person", "stop sign"], max_images=2)
    assert (first.labelled, first.reused, first.unreadable, first.images) == (2, 0, 1, 1)  # broken.jpg sorts first
    assert capsys.readouterr().err.count("warning: skipped 1 of 2 images that could not be read (first: broken") == 1
    again = label_source(images, [FASTEST], out, classes=["person", "stop sign"])
    assert (again.labelled, again.reused, again.images) == (1, 2, 2)
    data = _coco(out)
    assert [c["name"] for c in data["categories"]] == ["person", "stop sign"] and data["categories"][1]["id"] == 13
    files = {image["id"]: image["file_name"] for image in data["images"]}
    assert sorted(files.values()) == [STOP_SIGN, f"sub/{SKIER}"] and (out / "train" / "sub" / SKIER).is_file()
    found = {(files[a["image_id"]], a["category_id"]) for a in data["annotations"]}
    assert found == {(STOP_SIGN, 13), (f"sub/{SKIER}", 1)}
    assert all(0.3 <= a["score"] <= 1 for a in data["annotations"]) and again.teacher_boxes["stop sign"] >= 1
    with pytest.raises(UsageError, match="holds a labelling with other settings"):
        label_source(images, [FASTEST], out, classes=["person"])


@needs_shared
def test_a_line_cut_short_by_a_crash_is_labelled_again_and_a_foreign_folder_is_refused(images, tmp_path):
    out = tmp_path / "out"
    label_source(images, [FASTEST], out, classes=["person"])
    lines = (out / RECORDS).read_text().splitlines()
    (out / RECORDS).write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])
    resumed = label_source(images, [FASTEST], out, classes=["person"])
    assert (resumed.labelled, resumed.reused) == (1, 2) and len((out / RECORDS).read_text().splitlines()) == 3
    with pytest.raises(UsageError, match="holds other files"):
        label_source(images, [FASTEST], images.parent, classes=["person"])


@needs_shared
def test_ground_truth_wins_and_teachers_add_only_the_classes_a_dataset_lacks(tmp_path):
    source = tmp_path / "people"
    (source / "annotations").mkdir(parents=True)
    (source / "train").mkdir()
    coco = json.loads((COCO_MINI / "annotations" / "instances_val2017.json").read_text())
    kept = {image["id"]: image for image in coco["images"] if image["file_name"] in (STOP_SIGN, SKIER)}
    people = [a for a in coco["annotations"] if a["image_id"] in kept and a["category_id"] == 1]
    for image in kept.values():
        shutil.copy(COCO_MINI / "val2017" / image["file_name"], source / "train" / image["file_name"])
    (source / "annotations" / "instances_train.json").write_text(json.dumps({
        "images": list(kept.values()), "annotations": people, "categories": [{"id": 1, "name": "person"}]}))
    with pytest.raises(UsageError, match="already annotates every class"):
        label_source(source, [FASTEST], tmp_path / "none", classes=["person"])
    summary = label_source(source, [PICODET, YOLOX], tmp_path / "out", classes=["person", "stop sign", "skis"])
    data = _coco(tmp_path / "out")
    assert data["categories"] == [{"id": 1, "name": "person"}, {"id": 13, "name": "stop sign"},
                                  {"id": 35, "name": "skis"}]
    assert [a for a in data["annotations"] if a["category_id"] == 1] == people  # no score, unchanged, no teacher's
    taught = [a for a in data["annotations"] if a["category_id"] != 1]
    assert all("score" in a for a in taught) and {a["category_id"] for a in taught} == {13, 35}
    assert summary.ground_truth == {"person": len(people)} and summary.teacher_boxes["skis"] >= 1
    assert {image["id"] for image in data["images"]} == set(kept)


@needs_shared
def test_a_video_gives_sampled_distinct_frames_as_jpeg(tmp_path):
    summary = label_source(VIDEO, [PICODET], tmp_path / "out", classes=["person"], frame_step=1, min_change=1.5,
                           max_images=3)
    data = _coco(tmp_path / "out")
    names = [image["file_name"] for image in data["images"]]
    assert summary.images == 3 and summary.duplicates >= 1 and names[0] == "vtest_480x360_000000.jpg"
    frames = [int(name.rsplit("_", 1)[1][:-4]) for name in names]
    assert frames == sorted(frames) and frames[-1] > 2  # near-duplicate frames in between were dropped
    assert all((tmp_path / "out" / "train" / name).is_file() for name in names)
    assert data["images"][0]["width"] == 480 and summary.teacher_boxes["person"] >= 3  # pedestrians in every frame


@needs_shared
def test_the_cli_prints_a_summary_and_writes_its_numbers(images, tmp_path):
    result = CliRunner().invoke(app, ["label", str(images), "--teacher", str(FASTEST), "--out", str(tmp_path / "o"),
                                      "--classes", "person", "--json-out", str(tmp_path / "label.json")])
    assert result.exit_code == 0, result.output
    numbers = json.loads((tmp_path / "label.json").read_text())
    assert numbers["images"] == 2 and numbers["unreadable"] == 1 and numbers["teacher.person"] >= 1
    assert "images/s" in result.output
    result = CliRunner().invoke(app, ["label", str(images), "--teacher", str(FASTEST), "--out", str(tmp_path / "p"),
                                      "--frame-step", "0"])
    assert isinstance(result.exception, UsageError) and "--frame-step 0" in str(result.exception)

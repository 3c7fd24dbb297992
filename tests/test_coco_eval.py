"""COCO evaluation on a tiny in-memory ground truth: perfect, shifted, half-missed and empty predictions."""

import contextlib
import io
import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
from pycocotools.coco import COCO
from rich.console import Console

from edgedet.errors import UsageError
from edgedet.evaluate.coco_eval import (
    METRIC_KEYS,
    EvalReport,
    detections_to_coco,
    evaluate_coco,
    per_class_table,
    report_table,
)

CATS = [1, 18]  # non-contiguous, as in COCO
NAMES = ["person", "dog"]
IMAGES = [1, 2, 3]
# (image_id, category_id, xywh): 4 persons and 4 dogs, small (<32²), medium and large (>96²) of each
OBJECTS = [
    (1, 1, [100, 100, 200, 300]),  # large
    (1, 18, [350, 200, 60, 50]),  # medium
    (2, 1, [10, 10, 20, 25]),  # small
    (2, 1, [300, 100, 50, 80]),  # medium
    (2, 18, [200, 200, 150, 120]),  # large
    (3, 1, [150, 20, 120, 200]),  # large
    (3, 18, [50, 60, 24, 30]),  # small
    (3, 18, [20, 150, 40, 50]),  # medium
]
CROWD = (2, 1, [400, 300, 200, 150])
EMPTY_SPOT = (2, 1, [500, 20, 100, 100])  # no object of any kind there


@dataclass
class Det:
    boxes_xyxy: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


@pytest.fixture(scope="module")
def coco_gt(tmp_path_factory):
    anns = [
        {"id": i + 1, "image_id": img, "category_id": cat, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
        for i, (img, cat, box) in enumerate(OBJECTS)
    ]
    img, cat, box = CROWD
    anns.append({"id": 100, "image_id": img, "category_id": cat, "bbox": box, "area": box[2] * box[3], "iscrowd": 1})
    data = {
        "images": [{"id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in IMAGES],
        "categories": [{"id": c, "name": n} for c, n in zip(CATS, NAMES)],
        "annotations": anns,
    }
    path = tmp_path_factory.mktemp("coco") / "instances.json"
    path.write_text(json.dumps(data))
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def result(obj, dx=0.0, score=1.0):
    img, cat, (x, y, w, h) = obj
    return {"image_id": img, "category_id": cat, "bbox": [x + dx, y, w, h], "score": score}


def evaluate(coco_gt, results, cats=CATS, names=NAMES):
    return evaluate_coco(coco_gt, results, image_ids=IMAGES, category_ids=cats, class_names=names)


def test_perfect_predictions_score_100(coco_gt):
    report = evaluate(coco_gt, [result(o) for o in OBJECTS])
    for key in METRIC_KEYS:
        if key != "AR1":
            assert report.metrics[key] == pytest.approx(100.0), key
    assert report.metrics["AR1"] == pytest.approx(75.0)  # one detection per image and class: 3 of 4 found in each
    assert report.per_class == {"person": pytest.approx(100.0), "dog": pytest.approx(100.0)}
    assert report.num_images == 3 and report.num_detections == len(OBJECTS)
    assert "Average Precision" in report.summary_text


def test_boxes_shifted_to_iou_057_meet_two_of_ten_thresholds(coco_gt):
    # a horizontal shift by 0.27 w leaves IoU = (1 - 0.27) / (1 + 0.27) = 0.575: a match at IoU .50 and .55 only
    results = [result(o, dx=0.27 * o[2][2]) for o in OBJECTS]
    report = evaluate(coco_gt, results)
    assert report.metrics["AP50"] == pytest.approx(100.0)
    assert report.metrics["AP75"] == pytest.approx(0.0)
    assert report.metrics["AP"] == pytest.approx(20.0)  # 2 of 10 IoU thresholds, full precision at each
    assert report.per_class == {"person": pytest.approx(20.0), "dog": pytest.approx(20.0)}


def test_half_the_objects_missed(coco_gt):
    report = evaluate(coco_gt, [result(o) for o in OBJECTS[::2]])  # 2 of 4 of each class
    # precision 1 up to recall 0.5, then nothing: 51 of pycocotools' 101 recall points (0.00 .. 0.50)
    assert report.metrics["AP50"] == pytest.approx(100 * 51 / 101)
    assert report.metrics["AP"] == pytest.approx(100 * 51 / 101)
    assert report.metrics["AR100"] == pytest.approx(50.0)


def test_no_detections_gives_zeros(coco_gt):
    report = evaluate(coco_gt, [])
    assert all(report.metrics[key] == 0.0 for key in METRIC_KEYS)  # every size has ground truth here
    assert report.per_class == {"person": 0.0, "dog": 0.0}
    assert report.num_detections == 0
    assert report.to_json()["AP"] == 0.0


def test_restricting_categories_scores_only_those(coco_gt):
    wrong_dogs = [result(o, dx=500) for o in OBJECTS if o[1] == 18]
    results = [result(o) for o in OBJECTS if o[1] == 1] + wrong_dogs
    assert evaluate(coco_gt, results).metrics["AP"] == pytest.approx(50.0)  # dogs all wrong
    report = evaluate(coco_gt, results, cats=[1], names=["person"])
    assert report.per_class == {"person": pytest.approx(100.0)}
    assert report.metrics["AP"] == pytest.approx(100.0)
    assert report.num_detections == 4  # the dog results were dropped


def test_detections_on_a_crowd_region_are_not_false_positives(coco_gt):
    perfect = [result(o, score=0.9) for o in OBJECTS]
    on_crowd = evaluate(coco_gt, perfect + [result(CROWD, score=1.0)])
    assert on_crowd.metrics["AP"] == pytest.approx(100.0)
    # the same detection where nothing is: a false positive ranked first, so the test above could fail
    elsewhere = evaluate(coco_gt, perfect + [result(EMPTY_SPOT, score=1.0)])
    assert elsewhere.metrics["AP"] < 100.0


def test_classes_without_ground_truth_are_omitted(coco_gt):
    report = evaluate_coco(coco_gt, [result(OBJECTS[0])], image_ids=[1], category_ids=CATS, class_names=NAMES)
    assert report.per_class == {"person": pytest.approx(100.0), "dog": pytest.approx(0.0)}
    # image 1 has no small object: pycocotools says -1, the report says NaN, JSON says null
    report = evaluate_coco(coco_gt, [result(OBJECTS[0])], image_ids=[1], category_ids=[1], class_names=["person"])
    assert math.isnan(report.metrics["APs"]) and report.to_json()["APs"] is None
    assert not any(math.isnan(v) for v in report.per_class.values())


def test_detections_to_coco_maps_labels_and_boxes():
    det = Det(
        boxes_xyxy=np.array([[10, 20, 30, 60], [0.5, 1.25, 100.333, 50.5]], dtype=np.float32),
        scores=np.array([0.9, 0.25], dtype=np.float32),
        labels=np.array([1, 0]),
    )
    out = detections_to_coco(7, det, CATS)
    assert [r["category_id"] for r in out] == [18, 1]
    assert out[0]["bbox"] == [10.0, 20.0, 20.0, 40.0]
    assert out[1]["bbox"] == [0.5, 1.25, 99.83, 49.25]
    assert out[0]["image_id"] == 7 and out[0]["score"] == pytest.approx(0.9)
    json.dumps(out)  # plain Python types only
    empty = Det(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    assert detections_to_coco(7, empty, CATS) == []
    with pytest.raises(UsageError, match="outside the model's 2 classes"):
        detections_to_coco(7, Det(det.boxes_xyxy, det.scores, np.array([0, 2])), CATS)


def test_json_round_trip_and_tables(coco_gt):
    a = evaluate(coco_gt, [result(o) for o in OBJECTS])
    b = evaluate(coco_gt, [result(o) for o in OBJECTS[::2]])
    data = a.to_json()
    assert data["per_class_AP"]["dog"] == pytest.approx(100.0) and "summary_text" not in data
    assert EvalReport.from_json(json.loads(json.dumps(data))).metrics == a.metrics
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(report_table({"A": a, "B": b}))
    console.print(per_class_table(b, top=1))
    text = console.export_text()
    assert "100.0" in text and "50.5" in text and "top 1 of 2" in text


def test_bad_ids_are_usage_errors(coco_gt):
    with pytest.raises(UsageError, match="not in the annotation file"):
        evaluate_coco(coco_gt, [], image_ids=[99], category_ids=CATS, class_names=NAMES)
    with pytest.raises(UsageError, match="class names"):
        evaluate_coco(coco_gt, [], image_ids=IMAGES, category_ids=CATS, class_names=["person"])


def test_the_same_detections_scored_again_on_image_subsets(coco_gt, tmp_path):
    """``evaluate_subsets``: a subset whose objects were all found scores 100 and one where none was found 0,
    whatever the other images hold; a subset of several images scores as evaluating those images alone does."""
    from edgedet.evaluate.images import evaluate_subsets

    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco_gt.dataset))
    results = [result(o) for o in OBJECTS if o[0] != 3]  # image 3's objects all missed
    found, missed, both = evaluate_subsets(results, path, NAMES, [[1], [3], [1, 3]])
    assert found.metrics["AP"] == pytest.approx(100.0) and missed.metrics["AP"] == 0.0
    alone = evaluate_coco(coco_gt, results, image_ids=[1, 3], category_ids=CATS, class_names=NAMES)
    assert both.metrics == alone.metrics and both.num_images == 2

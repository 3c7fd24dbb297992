"""COCO dataset, transforms, synthetic set and subsets: labels, crowd, broken files, letterbox, augmentation, seeds."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from edgedet.cli import app
from edgedet.data.annotations import find_split
from edgedet.data.coco import CocoDetection, collate
from edgedet.data.subset import carve_coco_subset
from edgedet.data.synthetic import make_synthetic
from edgedet.data.transforms import eval_transforms, train_transforms
from edgedet.errors import EdgedetError, UsageError
from edgedet.runtime.preprocess import PAD_VALUE, letterbox

pytestmark = pytest.mark.usefixtures("one_thread")
IMGSZ = 160  # small canvases keep the augmentation tests fast




def _write_coco(root: Path, split: str, images: list[dict], annotations: list[dict], categories: list[dict]) -> None:
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for i, ann in enumerate(annotations):
        ann.setdefault("iscrowd", 0)
        ann.update(id=i + 1, area=ann["bbox"][2] * ann["bbox"][3])
    data = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """Five images: RGB with a crowd, a degenerate and an overhanging box; grey; RGBA; corrupt; missing."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "train").mkdir()
    cv2.imwrite(str(root / "train" / "rgb.jpg"), np.full((90, 120, 3), 200, np.uint8))
    cv2.imwrite(str(root / "train" / "grey.jpg"), np.full((48, 64), 90, np.uint8))
    cv2.imwrite(str(root / "train" / "rgba.png"), np.full((70, 50, 4), (10, 20, 30, 40), np.uint8))
    (root / "train" / "corrupt.jpg").write_bytes(b"not a jpeg at all")
    images = [{"id": i, "file_name": name, "height": h, "width": w} for i, (name, h, w) in enumerate(
        [("rgb.jpg", 90, 120), ("grey.jpg", 48, 64), ("rgba.png", 70, 50), ("corrupt.jpg", 9, 9), ("gone.jpg", 9, 9)],
        start=1)]
    annotations = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 30]},
        {"image_id": 1, "category_id": 1, "bbox": [50, 20, 30, 30], "iscrowd": 1},
        {"image_id": 1, "category_id": 3, "bbox": [60, 5, 20, 20]},
        {"image_id": 1, "category_id": 3, "bbox": [5, 5, 0.5, 10]},  # degenerate: dropped
        {"image_id": 1, "category_id": 5, "bbox": [100, 80, 50, 50]},  # overhangs: clipped to the image
        {"image_id": 3, "category_id": 3, "bbox": [1, 2, 30, 40]},
        {"image_id": 4, "category_id": 1, "bbox": [1, 1, 5, 5]},
    ]
    categories = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 5, "name": "airplane"}]
    _write_coco(root, "train", images, annotations, categories)
    return root


@pytest.fixture(scope="module")
def tiny_dataset(tiny) -> CocoDetection:
    return CocoDetection(tiny, "train")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("synthetic") / "shapes", train_images=12, val_images=4, size=200)


def test_find_split_resolves_short_names_and_says_what_exists(coco_mini, tiny):
    assert find_split(coco_mini, "train") == (coco_mini / "annotations" / "instances_train2017.json",
                                              coco_mini / "train2017")
    assert find_split(coco_mini, "val2017")[1] == coco_mini / "val2017"
    with pytest.raises(UsageError, match="no annotation files for split 'val'.*found: instances_train.json"):
        find_split(tiny, "val")


def test_unreadable_images_are_skipped_with_one_counting_warning(tiny, capsys):
    dataset = CocoDetection(tiny, "train")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "skipped 2 of 5 images" in lines[0] and "corrupt.jpg" in lines[0]
    assert len(dataset) == 3 and dataset.image_ids == [1, 2, 3]


def test_a_truncated_image_that_passes_the_cheap_check_fails_with_its_name(tmp_path):
    (tmp_path / "train").mkdir()
    cv2.imwrite(str(tmp_path / "train" / "cut.jpg"), np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8))
    jpeg = (tmp_path / "train" / "cut.jpg").read_bytes()
    (tmp_path / "train" / "cut.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    _write_coco(tmp_path, "train", [{"id": 1, "file_name": "cut.jpg", "height": 64, "width": 64}], [], [])
    with pytest.raises(EdgedetError, match="could not decode .*cut.jpg"):
        CocoDetection(tmp_path, "train")[0]


def test_targets_separate_crowd_drop_degenerate_and_clip(tiny_dataset):
    assert tiny_dataset.class_names == ["person", "car", "airplane"] and tiny_dataset.category_ids == [1, 3, 5]
    image, target = tiny_dataset[0]
    assert image.shape == (3, 90, 120) and image.dtype == torch.uint8
    assert target["boxes"].tolist() == [[10, 10, 30, 40], [60, 5, 80, 25], [100, 80, 120, 90]]
    assert target["labels"].tolist() == [0, 1, 2] and target["labels"].dtype == torch.int64
    assert target["crowd_boxes"].tolist() == [[50, 20, 80, 50]]
    assert target["boxes"].canvas_size == (90, 120) and target["boxes"].dtype == torch.float32
    assert (target["image_id"], target["orig_size"], target["scale"]) == (1, (90, 120), 1.0)


def test_grey_and_rgba_images_become_rgb(tiny_dataset):
    grey, target = tiny_dataset[1]
    assert grey.shape == (3, 48, 64) and torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert len(target["boxes"]) == 0 and target["boxes"].shape == (0, 4)  # a negative image is kept
    rgba, _ = tiny_dataset[2]
    assert rgba.shape == (3, 70, 50) and rgba[:, 0, 0].tolist() == [30, 20, 10]  # cv2 wrote BGRA


def test_classes_keep_those_categories_in_the_given_order(tiny, coco_mini):
    dataset = CocoDetection(tiny, "train", classes=["car", "person"])
    assert dataset.class_names == ["car", "person"] and dataset.category_ids == [3, 1]
    _, target = dataset[0]
    assert target["labels"].tolist() == [1, 0] and target["boxes"].tolist() == [[10, 10, 30, 40], [60, 5, 80, 25]]
    with pytest.raises(UsageError, match="unknown class 'persn'. Did you mean: person"):
        CocoDetection(coco_mini, "val", classes=["persn"])


def test_person_only_on_coco_mini_keeps_the_right_boxes_and_ids(coco_mini):
    dataset = CocoDetection(coco_mini, "val", classes=["person"])
    assert dataset.class_names == ["person"] and dataset.category_ids == [1] and len(dataset) == 190
    coco = dataset.coco
    crowded = {a["image_id"] for a in coco.loadAnns(coco.getAnnIds(catIds=[1], iscrowd=True))}
    for index in [i for i, image_id in enumerate(dataset.image_ids) if image_id in crowded][:3] + [0, 1, 2]:
        _, target = dataset[index]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[target["image_id"]], catIds=[1], iscrowd=None))
        expected = {False: [], True: []}
        for a in anns:
            x, y, w, h = a["bbox"]
            expected[bool(a["iscrowd"])].append([x, y, x + w, y + h])
        for key, crowd in (("boxes", False), ("crowd_boxes", True)):
            assert torch.allclose(target[key], torch.tensor(expected[crowd], dtype=torch.float32).reshape(-1, 4))
        assert target["labels"].tolist() == [0] * len(expected[False])
    assert crowded, "coco-mini val has person crowd regions"


def test_letterbox_matches_the_cv2_letterbox_and_maps_back_within_a_pixel(coco_mini):
    dataset = CocoDetection(coco_mini, "val", transforms=eval_transforms(320))
    for index in (0, 5, 17):
        image, target = dataset[index]
        path = dataset.image_dir / dataset.coco.imgs[target["image_id"]]["file_name"]
        reference, scale = letterbox(cv2.imread(str(path)), 320)
        assert target["scale"] == pytest.approx(scale) == pytest.approx(320 / max(target["orig_size"]))
        diff = (image.float() - torch.from_numpy(reference[0])).abs()  # (3, 320, 320)
        assert diff.max() <= 2 and diff.mean() < 0.5  # bilinear in uint8: rounding differs by a level at most
        height, width = target["orig_size"]
        assert (image[:, round(height * scale):, :] == PAD_VALUE).all()
        assert (image[:, :, round(width * scale):] == PAD_VALUE).all()
        dataset.transforms = None
        _, original = dataset[index]
        dataset.transforms = eval_transforms(320)
        assert (target["boxes"] / target["scale"] - original["boxes"]).abs().max() < 1.0


@pytest.fixture(scope="module")
def rgb_squares(tmp_path_factory) -> Path:
    """Pure red, green and blue squares labelled 0, 1, 2 and a black crowd region, on grey: alignment is visible."""
    root = tmp_path_factory.mktemp("squares")
    image = np.full((120, 160, 3), 128, np.uint8)
    boxes = [[10, 10, 40, 40], [60, 50, 40, 40], [110, 20, 40, 60]]
    for (x, y, w, h), bgr in zip(boxes, [(0, 0, 255), (0, 255, 0), (255, 0, 0)]):
        image[y:y + h, x:x + w] = bgr
    image[85:115, 10:50] = 0
    (root / "train").mkdir()
    cv2.imwrite(str(root / "train" / "1.png"), image)
    annotations = [{"image_id": 1, "category_id": c, "bbox": b} for c, b in zip((1, 2, 3), boxes)]
    annotations.append({"image_id": 1, "category_id": 1, "bbox": [10, 85, 40, 30], "iscrowd": 1})
    categories = [{"id": i, "name": n} for i, n in enumerate(("red", "green", "blue"), start=1)]
    _write_coco(root, "train", [{"id": 1, "file_name": "1.png", "height": 120, "width": 160}], annotations, categories)
    return root


def test_augmentation_keeps_boxes_in_the_canvas_and_with_their_labels(rgb_squares):
    dataset = CocoDetection(rgb_squares, "train", transforms=train_transforms(IMGSZ))
    torch.manual_seed(0)
    seen = 0
    for _ in range(25):
        image, target = dataset[0]
        assert image.shape == (3, IMGSZ, IMGSZ) and image.dtype == torch.uint8
        boxes, labels, crowd = target["boxes"], target["labels"], target["crowd_boxes"]
        assert len(boxes) == len(labels) and boxes.canvas_size == (IMGSZ, IMGSZ)
        for box in torch.cat([boxes, crowd]):
            assert 0 <= box[0] < box[2] <= IMGSZ and 0 <= box[1] < box[3] <= IMGSZ
        for box, label in zip(boxes.round().int().tolist(), labels.tolist()):
            if box[2] - box[0] > 6 and box[3] - box[1] > 6:
                inner = image[:, box[1] + 2:box[3] - 2, box[0] + 2:box[2] - 2].float().mean(dim=(1, 2))  # (3,)
                assert inner.argmax() == label
                seen += 1
        for x1, y1, x2, y2 in crowd.round().int().tolist():
            if x2 - x1 > 6 and y2 - y1 > 6:
                assert image[:, y1 + 2:y2 - 2, x1 + 2:x2 - 2].float().mean() < 80  # the black region moved with it
    assert seen > 25


def test_same_seed_same_augmentation(shapes):
    dataset = CocoDetection(shapes, "train", transforms=train_transforms(IMGSZ))

    def boxes(seed: int) -> list[list[float]]:
        torch.manual_seed(seed)
        return [dataset[i][1]["boxes"].tolist() for i in range(6)]

    assert boxes(1) == boxes(1) and boxes(1) != boxes(2)

    def loader_boxes(seed: int) -> list:
        loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True, num_workers=1, collate_fn=collate,
                                             generator=torch.Generator().manual_seed(seed))
        return [[t["boxes"].tolist() for t in targets] for _, targets in loader]

    assert loader_boxes(5) == loader_boxes(5)


def test_collate_stacks_letterboxed_images_and_keeps_plain_targets(shapes):
    dataset = CocoDetection(shapes, "val", transforms=eval_transforms(IMGSZ))
    images, targets = collate([dataset[0], dataset[1]])
    assert images.shape == (2, 3, IMGSZ, IMGSZ) and images.dtype == torch.uint8 and type(images) is torch.Tensor
    assert type(targets[0]["boxes"]) is torch.Tensor and set(targets[0]) >= {"boxes", "labels", "crowd_boxes",
                                                                            "image_id", "orig_size", "scale"}
    dataset.transforms = None
    with pytest.raises(UsageError, match="images of one size"):
        collate([dataset[0], dataset[1]])


def test_synthetic_is_deterministic_tight_and_reused(shapes, tmp_path):
    again = make_synthetic(tmp_path / "again", train_images=12, val_images=4, size=200)
    for name in ("annotations/instances_train.json", "annotations/instances_val.json", "train/000003.jpg"):
        assert (again / name).read_bytes() == (shapes / name).read_bytes()
    other = make_synthetic(tmp_path / "other", train_images=12, val_images=4, size=200, seed=1)
    assert (other / "annotations/instances_train.json").read_bytes() != (shapes / "annotations/instances_train.json"
                                                                          ).read_bytes()
    assert make_synthetic(shapes, train_images=12, val_images=4, size=200) == shapes  # reused, not rebuilt
    with pytest.raises(UsageError, match="already exists"):
        make_synthetic(shapes, train_images=13, val_images=4, size=200)

    data = json.loads((shapes / "annotations/instances_train.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["circle", "square", "triangle"]
    files = {i["id"]: i["file_name"] for i in data["images"]}
    for ann in data["annotations"]:
        image = cv2.imread(str(shapes / "train" / files[ann["image_id"]]))[:, :, ::-1].astype(int)  # (H, W, 3) RGB
        x, y, w, h = ann["bbox"]
        near = np.abs(image - ann["color"]).sum(axis=2) < 60  # the shape's colour, give or take JPEG
        inside = near[y:y + h, x:x + w]
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()  # touches 4 sides
        assert ann["area"] <= w * h and inside.sum() >= 0.8 * ann["area"]


def test_coco_subset_keeps_the_chosen_classes_and_their_ids(coco_mini, tmp_path):
    out = carve_coco_subset(coco_mini, "val2017", tmp_path / "sub", classes=["person", "dog"], max_images=10)
    data = json.loads((out / "annotations" / "instances_val2017.json").read_text())
    assert sorted(c["id"] for c in data["categories"]) == [1, 18]
    assert len(data["images"]) == 10 and {a["category_id"] for a in data["annotations"]} <= {1, 18}
    with_objects = {a["image_id"] for a in data["annotations"]}
    assert all(i["id"] in with_objects and (out / "val2017" / i["file_name"]).is_file() for i in data["images"])
    assert carve_coco_subset(coco_mini, "val2017", out, classes=["person", "dog"], max_images=10) == out  # reused
    dataset = CocoDetection(out, "val", classes=["dog", "person"])
    assert len(dataset) == 10 and dataset.category_ids == [18, 1]


def test_cli_data_synthetic_and_stats(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["data", "synthetic", "--out", str(tmp_path / "s"), "--train-images", "3",
                                 "--val-images", "2", "--size", "200"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "s" / "train").glob("*.jpg"))) == 3
    result = runner.invoke(app, ["data", "stats", str(tmp_path / "s"), "--split", "val"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "triangle" in result.output and "2 images" in result.output

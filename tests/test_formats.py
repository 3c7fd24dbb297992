"""YOLO and Pascal VOC folders read as COCO: loading, every bad-input case, the YOLO -> COCO round trip, unions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgedet.data.coco import split_stats
from edgedet.data.annotations import find_split, load_coco
from edgedet.data.formats import canonical_name, convert_to_coco, detect_format
from edgedet.errors import UsageError

# (class, x1, y1, x2, y2) in pixels of a 200 x 100 image
BOXES = {"a": [(0, 10.0, 20.0, 60.0, 90.0), (1, 100.0, 5.0, 190.0, 45.0)], "b": [(1, 30.0, 30.0, 50.0, 70.0)]}
W, H = 200, 100


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEDET_CACHE", str(tmp_path / "cache"))


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(path)


def _yolo_line(cls: int, x1: float, y1: float, x2: float, y2: float) -> str:
    return f"{cls} {(x1 + x2) / 2 / W:.6f} {(y1 + y2) / 2 / H:.6f} {(x2 - x1) / W:.6f} {(y2 - y1) / H:.6f}"


def make_yolo(root: Path, names=("person", "Motorbike"), yaml: bool = True, extra: dict | None = None) -> Path:
    for split in ("train", "val"):
        for stem, boxes in BOXES.items():
            _image(root / "images" / split / f"{stem}.jpg")
            label = root / "labels" / split / f"{stem}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("\n".join(_yolo_line(*b) for b in boxes) + "\n")
    if yaml:
        listed = "\n".join(f"  {i}: {n}" for i, n in enumerate(names))
        (root / "data.yaml").write_text(f"path: .\ntrain: images/train\nval: images/val\nnames:\n{listed}\n")
    else:
        (root / "classes.txt").write_text("\n".join(names) + "\n")
    for name, text in (extra or {}).items():
        (root / name).write_text(text)
    return root


def make_voc(root: Path) -> Path:
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for stem, boxes in BOXES.items():
        _image(root / "JPEGImages" / f"{stem}.jpg")
        objects = "".join(
            f"<object><name>{['person', 'tvmonitor'][c]}</name><difficult>{int(stem == 'b')}</difficult><bndbox>"
            f"<xmin>{x1 + 1:g}</xmin><ymin>{y1 + 1:g}</ymin><xmax>{x2:g}</xmax><ymax>{y2:g}</ymax></bndbox></object>"
            for c, x1, y1, x2, y2 in boxes)
        (root / "Annotations").mkdir(exist_ok=True)
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename>{objects}</annotation>")
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\nb\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("b\n")
    return root


def _boxes(annotations: Path) -> dict[str, list[tuple[str, list[float], int]]]:
    coco = load_coco(annotations)
    out = {}
    for image in coco.dataset["images"]:
        anns = coco.imgToAnns[image["id"]]
        out[Path(image["file_name"]).stem] = [(coco.cats[a["category_id"]]["name"], a["bbox"], a["iscrowd"])
                                              for a in anns]
    return out


def test_yolo_round_trip_to_coco_within_half_a_pixel(tmp_path):
    root = make_yolo(tmp_path / "yolo")
    assert detect_format(root) == "yolo"
    annotations, images = find_split(root, "train")
    assert images == (root / "images" / "train").resolve()
    got = _boxes(annotations)
    for stem, boxes in BOXES.items():
        assert len(got[stem]) == len(boxes)
        for (name, xywh, _), (cls, x1, y1, x2, y2) in zip(got[stem], boxes):
            assert name == ["person", "motorcycle"][cls]  # mapped by name onto COCO's spelling
            assert np.allclose(xywh, [x1, y1, x2 - x1, y2 - y1], atol=0.5)
    cats = {c["name"]: c["id"] for c in load_coco(annotations).dataset["categories"]}
    assert cats == {"person": 1, "motorcycle": 4}  # COCO's own ids, so evaluation matches them by name


def test_yolo_without_yaml_and_with_a_short_split_name(tmp_path):
    root = make_yolo(tmp_path / "bare", names=("person", "widget"), yaml=False)
    annotations, _ = find_split(root, "val2017")  # the COCO short-name rule works both ways
    names = sorted(c["name"] for c in load_coco(annotations).dataset["categories"])
    assert names == ["person", "widget"]
    assert {c["id"] for c in load_coco(annotations).dataset["categories"]} == {1, 1001}


def test_voc_reads_difficult_boxes_as_crowd(tmp_path):
    root = make_voc(tmp_path / "voc")
    assert detect_format(root) == "voc"
    got = _boxes(find_split(root, "train")[0])
    assert [(n, crowd) for n, _, crowd in got["a"]] == [("person", 0), ("tv", 0)]
    assert np.allclose(got["a"][0][1], [10, 20, 50, 70], atol=0.5)
    assert [crowd for _, _, crowd in got["b"]] == [1]
    assert list(_boxes(find_split(root, "val")[0])) == ["b"]


def test_bad_label_lines_are_skipped_and_counted_with_file_and_line(tmp_path, capsys):
    root = make_yolo(tmp_path / "bad")
    label = root / "labels" / "train" / "a.txt"
    label.write_text(label.read_text() + "7 0.5 0.5 0.1 0.1\n0 1.5 0.5 0.1 0.1\n0 0.5 0.5 0 0.1\nnot a box\n")
    (root / "labels" / "train" / "b.txt").unlink()  # an image without objects, not an error
    (root / "images" / "train" / "c.jpg").write_bytes(b"not a jpeg")
    annotations, _ = find_split(root, "train")
    err = capsys.readouterr().err
    assert "a.txt:3" in err and "a.txt:6" in err and "class id outside 0..1" in err
    assert "1 images have no label file" in err and "c.jpg" in err
    data = json.loads(annotations.read_text())
    assert data["info"]["edgedet_converted"]["skipped"] == {
        "lines with a class id outside 0..1": 1, "boxes with coordinates outside 0..1": 1,
        "boxes with a non-positive size": 1, "lines that do not parse as 'class cx cy w h'": 1,
        "images that cannot be read": 1}
    assert len(data["images"]) == 2 and len(data["annotations"]) == 2
    stats = split_stats(root, "train")
    assert stats["format"] == "yolo" and stats["images_without_label_file"] == 1
    assert stats["skipped"] == data["info"]["edgedet_converted"]["skipped"]


@pytest.mark.parametrize("yaml_text, message", [
    ("train: images/train\nval: images/val\n", "has no 'names'"),
    ("names: [person]\ntrain: images/nowhere\nval: images/val\n", "does not exist"),
    ("names: {0: person, 2: car}\ntrain: images/train\nval: images/val\n", "without gaps"),
    ("names: [person, person]\ntrain: images/train\nval: images/val\n", "named twice"),
    ("names: [person\n", "not valid YAML"),
])
def test_broken_data_yaml_is_one_clear_error(tmp_path, yaml_text, message):
    root = make_yolo(tmp_path / "y")
    (root / "data.yaml").write_text(yaml_text)
    with pytest.raises(UsageError, match=message):
        find_split(root, "train")


def test_a_folder_that_is_no_dataset_says_which_layouts_exist(tmp_path):
    with pytest.raises(UsageError, match="COCO .* YOLO .* VOC"):
        detect_format(tmp_path)


def test_changed_labels_are_converted_again(tmp_path):
    root = make_yolo(tmp_path / "y")
    first, _ = find_split(root, "val")
    (root / "labels" / "val" / "b.txt").write_text("")
    second, _ = find_split(root, "val")
    assert first != second and len(load_coco(second).anns) == 2


def test_convert_writes_a_coco_folder_that_reads_back(tmp_path):
    root = make_voc(tmp_path / "voc")
    out = tmp_path / "coco"
    assert convert_to_coco(root, out) == {"train": 2, "val": 1}
    assert detect_format(out) == "coco"
    assert _boxes(find_split(out, "train")[0]) == _boxes(find_split(root, "train")[0])
    with pytest.raises(UsageError, match="already exists"):
        convert_to_coco(root, out)


def test_canonical_names_match_voc_and_case_spellings():
    assert canonical_name("TV_Monitor") == "tv" and canonical_name("Dining-Table") == "dining table"
    assert canonical_name("aeroplane") == "airplane"


def test_union_of_a_person_set_and_a_two_class_set_marks_what_each_annotates(tmp_path):
    import torch

    from edgedet.data.coco import UnionDetection

    people = make_yolo(tmp_path / "people", names=("person",))
    for label in (people / "labels").rglob("*.txt"):  # one class: keep the class-0 boxes only
        label.write_text("".join(line + "\n" for line in label.read_text().splitlines() if line.startswith("0 ")))
    both = make_voc(tmp_path / "voc")
    union = UnionDetection([people, both], "train")
    assert union.class_names == ["person", "tv"] and union.category_ids == [1, 72]
    assert len(union) == 4
    assert union[0][1]["annotated"].tolist() == [True, False]  # the person set says nothing about TVs
    assert union[2][1]["annotated"].tolist() == [True, True]
    assert UnionDetection([people, both], "train", classes=["tvmonitor"]).class_names == ["tvmonitor"]
    with pytest.raises(UsageError, match="no dataset annotates car"):
        UnionDetection([people, both], "train", classes=["person", "car"])
    assert isinstance(union[1][1]["labels"], torch.Tensor)


def test_data_repeats_list_a_small_set_several_times_per_epoch(tmp_path):
    from edgedet.data.coco import UnionDetection
    from edgedet.train.config import TrainConfig

    people, voc = make_yolo(tmp_path / "people", names=("person",)), make_voc(tmp_path / "voc")
    union = UnionDetection([people, voc], "train", repeats=[1, 3])
    assert len(union) == 2 + 3 * 2
    assert union[2][1]["image_id"] == union[4][1]["image_id"] == union[6][1]["image_id"]  # voc's first, 3 times
    assert len(union.with_transforms(None)) == 8
    for bad in ([2], [1, 0]):
        with pytest.raises(UsageError, match="one whole number >= 1 per --data folder"):
            TrainConfig.from_dict({"data": [str(people), str(voc)], "data_repeats": bad})


def test_a_class_the_image_does_not_annotate_gets_no_classification_gradient():
    import torch

    from edgedet.detect.loss import DetectionLoss

    points = torch.tensor([[8.0, 8.0], [24.0, 8.0], [8.0, 24.0], [24.0, 24.0]])
    strides = torch.full((4,), 16.0)
    raw = torch.zeros(1, 4, 4 + 2, requires_grad=True)
    target = {"boxes": torch.tensor([[0.0, 0.0, 16.0, 16.0]]), "labels": torch.tensor([0])}
    for annotated, car_grad in (([True, True], True), ([True, False], False)):
        raw.grad = None
        losses = DetectionLoss(2)(raw, points, strides, [target | {"annotated": torch.tensor(annotated)}])
        (losses["loss_cls"] + losses["loss_box"]).backward()
        assert raw.grad[0, :, 4].abs().sum() > 0  # person is always learned
        assert bool(raw.grad[0, :, 5].abs().sum() > 0) == car_grad

"""edgedet predict: folders, globs and videos in; annotated copies, COCO results and JSON lines out; providers."""

import json
import shutil

import cv2
import pytest
from pycocotools.coco import COCO
from typer.testing import CliRunner

from edgedet.cli import app
from edgedet.data.annotations import find_split
from edgedet.errors import UsageError
from edgedet.evaluate.images import split_images
from edgedet.runtime.session import choose_providers

runner = CliRunner()


def test_predict_on_a_folder_writes_coco_results_json_lines_and_annotated_images(exported, synthetic_small, in_tmp):
    images = split_images(synthetic_small, "val")[:4]
    folder = in_tmp / "photos"
    folder.mkdir()
    for image in images:
        shutil.copy(image, folder / image.name)
    (folder / "broken.jpg").write_bytes(b"not an image")
    annotations, _ = find_split(synthetic_small, "val")
    result = runner.invoke(app, ["predict", str(exported), "--source", str(folder), "--conf", "0.01", "--coco-ann",
                                 str(annotations), "--name", "p", "--json-out", "n.json"])
    assert result.exit_code == 0, result.output
    numbers = json.loads((in_tmp / "n.json").read_text())
    assert numbers["images"] == 4 and numbers["skipped"] == 1 and numbers["provider"] == "cpu"
    run = in_tmp / "runs/predict/p"
    results = json.loads((run / "predictions.json").read_text())
    assert len(results) == numbers["detections"] > 0
    ground_truth = COCO(str(annotations))
    assert len(ground_truth.loadRes(results).getAnnIds()) == len(results)  # ids and categories are the file's
    assert {r["category_id"] for r in results} <= set(ground_truth.getCatIds())  # matched by name: scored, not lost
    lines = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert [line["file"] for line in lines] == [str(folder / image.name) for image in images]
    assert sum(len(line["detections"]) for line in lines) == len(results)
    drawn = cv2.imread(str(run / images[0].name))
    assert drawn.shape == cv2.imread(str(images[0])).shape and (drawn != cv2.imread(str(images[0]))).any()


def test_predict_on_a_video_writes_an_annotated_video_and_a_line_per_frame(exported, synthetic_small, in_tmp):
    frames = [cv2.resize(cv2.imread(str(p)), (160, 128)) for p in split_images(synthetic_small, "val")[:5]]
    writer = cv2.VideoWriter(str(in_tmp / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(frame)
    writer.release()
    result = runner.invoke(app, ["predict", str(exported), "--source", "clip.mp4", "--save-dir", "out",
                                 "--out", "video.json", "--conf", "0.01"])
    assert result.exit_code == 0, result.output
    assert len((in_tmp / "video.jsonl").read_text().splitlines()) == 5
    capture = cv2.VideoCapture(str(in_tmp / "out/clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5


def test_bad_sources_and_unavailable_providers_are_one_line(exported, in_tmp):
    missing = runner.invoke(app, ["predict", str(exported), "--source", "nowhere/*.jpg"])
    assert isinstance(missing.exception, UsageError) and "no images there" in str(missing.exception)
    cuda = runner.invoke(app, ["predict", str(exported), "--source", ".", "--provider", "cuda"])
    assert isinstance(cuda.exception, UsageError) and "has only cpu" in str(cuda.exception)


def test_auto_takes_the_best_provider_present_and_tensorrt_gets_its_switches(monkeypatch):
    assert choose_providers("auto") == ("cpu", ["CPUExecutionProvider"])
    present = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr("onnxruntime.get_available_providers", lambda: present)
    chosen, providers = choose_providers("auto", "fp16,int8,cache=engines")
    assert chosen == "tensorrt" and providers[1] == "CPUExecutionProvider"
    assert providers[0] == ("TensorrtExecutionProvider", {"trt_fp16_enable": True, "trt_int8_enable": True,
                                                          "trt_engine_cache_enable": True,
                                                          "trt_engine_cache_path": "engines"})
    assert choose_providers("cuda") == ("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert choose_providers("cpu") == ("cpu", ["CPUExecutionProvider"])
    with pytest.raises(UsageError, match="TensorRT's switches, but the provider is cuda"):
        choose_providers("cuda", "fp16")  # not dropped without a word

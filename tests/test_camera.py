"""The live loop: stats, detections where the objects are, newest-frame dropping, reconnects, saved video, no torch."""

import json
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from edgedet.errors import UsageError
from edgedet.runtime.camera import run_loop
from edgedet.runtime.detections import Detections
from edgedet.runtime.onnx_detector import OnnxDetector

FRAMES, SIZE, SIDE = 24, (160, 120), 30


def _square_at(index: int) -> tuple[int, int]:
    return 10 + 4 * index, 20 + 2 * index  # top-left corner of the white square in frame ``index``


def _frame(index: int) -> np.ndarray:
    image = np.full((SIZE[1], SIZE[0], 3), 40, np.uint8)
    x, y = _square_at(index)
    image[y:y + SIDE, x:x + SIDE] = 255
    return image


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "moving_square.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, SIZE)
    for index in range(FRAMES):
        writer.write(_frame(index))
    writer.release()
    return path


class BrightSpotDetector:
    """A stand-in model whose answer is known: the bounding box of the bright pixels, in original pixels."""

    class_names = ["square"]

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s

    def preprocess(self, image):
        return image, 1.0

    def infer(self, tensor):
        time.sleep(self.delay_s)
        return tensor

    def postprocess(self, raw, scale, orig_size):
        ys, xs = np.nonzero(raw[..., 0] > 128)
        if not len(xs):
            return Detections.empty()
        box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32) / scale
        return Detections(box, np.array([0.9], np.float32), np.array([0]))


def test_file_loop_processes_every_frame_and_finds_the_objects(video, tmp_path):
    found = {}
    stats = run_loop(BrightSpotDetector(), str(video), show=False, save=tmp_path / "out.mp4",
                     on_frame=lambda frame, det: found.setdefault(frame.index, det.boxes_xyxy.copy()))
    summary = stats.summary()
    assert summary["frames_read"] == summary["processed"] == FRAMES and summary["dropped"] == 0
    assert summary["stopped_by"] == "end of source" and summary["fps"] > 0 and summary["e2e_p50_ms"] > 0
    for index, boxes in found.items():
        x, y = _square_at(index)
        np.testing.assert_allclose(boxes[0], [x, y, x + SIDE, y + SIDE], atol=3)  # mp4 blurs edges slightly
    saved = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert saved.get(cv2.CAP_PROP_FRAME_COUNT) == FRAMES and saved.read()[0]
    assert not list(tmp_path.glob(".*partial*"))


def test_the_real_model_runs_the_loop_and_saves_a_playable_video(exported, video, tmp_path):
    stats = run_loop(OnnxDetector(exported), str(video), show=True, save=tmp_path / "live.mp4", max_frames=10)
    assert stats.processed == 10 and stats.stopped_by == "--max-frames 10" and len(stats.inference_ms) == 10
    assert cv2.VideoCapture(str(tmp_path / "live.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 10


class FakeStream:
    """A live source: frames as fast as asked, then a broken connection after ``frames``."""

    def __init__(self, frames: int) -> None:
        self.left = frames

    def isOpened(self):
        return True

    def get(self, prop):
        return 30.0

    def read(self):
        self.left -= 1
        time.sleep(0.002)
        return (self.left >= 0), (_frame(0) if self.left >= 0 else None)

    def release(self):
        pass


def test_live_source_keeps_only_the_newest_frame_and_reconnects_then_stops(monkeypatch):
    opened = []

    def opener(source):
        if opened:
            raise UsageError("stream gone")
        opened.append(source)
        return FakeStream(200)

    stats = run_loop(BrightSpotDetector(delay_s=0.02), "rtsp://camera.local/stream", show=False, opener=opener,
                     max_reconnects=2)
    assert stats.frames_read == 200 and stats.dropped > 100  # 2 ms frames, 20 ms model: no backlog, drops
    assert stats.processed + stats.dropped <= stats.frames_read
    assert stats.reconnects == 2 and "2 reconnects failed" in stats.stopped_by


class StallingStream(FakeStream):
    """Gives a few frames, then its read blocks, as a stalled RTSP stream does."""

    def read(self):
        if self.left <= 0:
            time.sleep(30)
        return super().read()


def test_a_live_source_that_stalls_is_stopped_cleanly_with_a_reason():
    start = time.perf_counter()
    stats = run_loop(BrightSpotDetector(), "rtsp://camera.local/stream", show=False,
                     opener=lambda source: StallingStream(5), stall_s=0.5)
    assert stats.processed >= 1 and "no frame for 0.5 s (the stream stalled)" in stats.stopped_by
    assert time.perf_counter() - start < 10  # not hung on the blocked read


def test_a_source_that_cannot_be_opened_says_what_to_try():
    with pytest.raises(UsageError, match="no such file.*--source path.mp4"):
        run_loop(BrightSpotDetector(), "missing.mp4", show=False)


def test_unknown_class_filter_lists_the_models_classes(video):
    with pytest.raises(UsageError, match="no class 'car' .it has: square"):
        run_loop(BrightSpotDetector(), str(video), show=False, classes=["car"])


def test_camera_command_runs_without_torch(exported, video, tmp_path):
    code = ("import sys, json; from edgedet.cli import main; sys.argv = ['edgedet', 'camera', sys.argv[1], "
            "'--source', sys.argv[2], '--max-frames', '3', '--json-out', sys.argv[3]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code, str(exported), str(video), str(tmp_path / "s.json")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "s.json").read_text())["processed"] == 3


def test_ctrl_c_stops_cleanly_with_a_playable_video(video, tmp_path):
    def interrupt_at_frame_5(frame, detections):
        if frame.index == 5:
            raise KeyboardInterrupt

    stats = run_loop(BrightSpotDetector(), str(video), show=False, save=tmp_path / "cut.mp4",
                     on_frame=interrupt_at_frame_5)
    assert stats.stopped_by == "Ctrl-C" and stats.processed == 6
    saved = cv2.VideoCapture(str(tmp_path / "cut.mp4"))
    assert saved.get(cv2.CAP_PROP_FRAME_COUNT) == 5 and saved.read()[0]  # frames 0-4 were drawn and written


def test_a_camera_that_is_not_there_is_one_line_and_exit_2(exported, tmp_path):
    result = subprocess.run([sys.executable, "-m", "edgedet", "camera", str(exported), "--source", "99",
                             "--no-show"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == ("error: could not open camera index 99 (/dev/video99); check the device/URL, or try "
                             "--source path.mp4\n")


def test_realtime_file_plays_at_its_frame_rate_and_drops_what_the_model_misses(video):
    start = time.perf_counter()
    stats = run_loop(BrightSpotDetector(delay_s=0.25), str(video), show=False, realtime=True)
    assert time.perf_counter() - start >= (FRAMES - 1) / 10 * 0.9  # 24 frames at the file's 10 fps
    assert stats.frames_read == FRAMES and stats.dropped > 0 and stats.processed + stats.dropped <= FRAMES

"""The live loop: capture in its own thread, inference and drawing in the main loop, optional display and writer.

A live source (camera, RTSP, HTTP) keeps only its newest frame, so a slow model never builds a backlog: the frames
it could not take are counted as dropped. A file is read in order without dropping, unless ``realtime`` plays it
at its own frame rate (then it behaves like a live source). Torch-free: OpenCV, numpy and ONNX Runtime only.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edgedet.errors import EdgedetError, UsageError
from edgedet.runtime.detections import Detections

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own console noise on a failed open: quiet
WINDOW = "edgedet"
QUIT_KEYS = (ord("q"), 27)  # q, Esc


class FrameDetector(Protocol):
    class_names: list[str]

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, float]: ...

    def infer(self, tensor: np.ndarray) -> np.ndarray: ...

    def postprocess(self, raw: np.ndarray, scale: float, orig_size: tuple[int, int]) -> Detections: ...


@dataclass
class Frame:
    image: np.ndarray
    index: int  # position in the source, from 0
    captured: float  # perf_counter() when read


def is_live(source: str) -> bool:
    return source.isdigit() or "://" in source


def open_capture(source: str) -> cv2.VideoCapture:
    """A camera index, a file or a stream URL; failure lists what was tried and what to do (in one line: OpenCV's
    own warnings are silenced while opening)."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    if source.isdigit():
        capture, tried = cv2.VideoCapture(int(source)), f"camera index {source} (/dev/video{source})"
    elif "://" in source:
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 10000]  # no endless read
        capture, tried = cv2.VideoCapture(source, cv2.CAP_FFMPEG, timeouts), f"stream {source} via FFmpeg"
    else:
        if not Path(source).is_file():
            raise UsageError(f"--source {source}: no such file, and not a camera index or URL; "
                             "try --source 0 (first camera) or --source path.mp4")
        capture, tried = cv2.VideoCapture(source), f"video file {source}"
    if not capture.isOpened():
        raise UsageError(f"could not open {tried}; check the device/URL, or try --source path.mp4")
    return capture


class FrameReader(threading.Thread):
    """Reads frames into a one-slot queue: a live (or ``realtime``) source replaces an untaken frame with the newer
    one and counts it dropped; a file waits for its turn, so every frame is processed."""

    def __init__(self, source: str, *, realtime: bool = False, max_reconnects: int = 5,
                 opener: Callable[[str], cv2.VideoCapture] = open_capture, stall_s: float = 20.0) -> None:
        super().__init__(daemon=True, name="edgedet-capture")
        self.source, self.opener, self.max_reconnects = source, opener, max_reconnects
        self.stall_s = stall_s  # a live source silent this long is given up (a read blocked past its own timeout)
        self.capture = opener(source)
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or 0.0
        self.newest_only = is_live(source) or realtime
        self.paced = realtime and not is_live(source)
        self.frames = queue.Queue(maxsize=1)
        # files: read the next frame only once the loop took the last, so decoding overlaps inference but a
        # frame never waits more than one cycle (its capture time stays honest)
        self.turn = threading.Semaphore(1)
        self.read_count = self.dropped = self.reconnects = 0
        self.stopping = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        start = time.perf_counter()
        try:
            while not self.stopping.is_set():
                if not self.newest_only and not self.turn.acquire(timeout=0.1):
                    continue
                ok, image = self.capture.read()
                if not ok:
                    if is_live(self.source) and self._reconnect():
                        continue
                    break
                if self.paced and self.fps > 0:
                    time.sleep(max(0.0, start + self.read_count / self.fps - time.perf_counter()))
                self._put(Frame(image, self.read_count, time.perf_counter()))
                self.read_count += 1
        finally:
            self.capture.release()
            self._put(None)

    def _put(self, frame: Frame | None) -> None:
        if self.newest_only:
            try:
                self.frames.get_nowait()
                if frame is not None:
                    self.dropped += 1
            except queue.Empty:
                pass
            self.frames.put(frame)
            return
        while not self.stopping.is_set():
            try:
                self.frames.put(frame, timeout=0.1)
                return
            except queue.Full:
                continue

    def _reconnect(self) -> bool:
        """Re-open a live source with exponential backoff; False once ``max_reconnects`` is spent."""
        self.capture.release()
        for attempt in range(self.max_reconnects - self.reconnects):
            self.reconnects += 1
            if self.stopping.wait(min(8.0, 0.5 * 2 ** attempt)):
                return False
            try:
                self.capture = self.opener(self.source)
                return True
            except UsageError:
                continue
        self.error = f"{self.source}: lost the stream and {self.max_reconnects} reconnects failed"
        return False

    def next_frame(self) -> Frame | None:
        """The next frame to process; None at the end of the source, or when a live source stalls."""
        waiting_since = time.perf_counter()
        while True:
            try:
                frame = self.frames.get(timeout=0.1)
                if not self.newest_only:
                    self.turn.release()
                return frame
            except queue.Empty:
                if not self.is_alive() and self.frames.empty():
                    return None
                if is_live(self.source) and time.perf_counter() - waiting_since > self.stall_s:
                    self.error = f"{self.source}: no frame for {self.stall_s:g} s (the stream stalled); stopped"
                    self.stop()
                    return None

    def stop(self) -> None:
        self.stopping.set()


def _colour(label: int) -> tuple[int, int, int]:
    hue = (label * 47) % 180
    bgr = cv2.cvtColor(np.array([[[hue, 220, 255]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw(image: np.ndarray, detections: Detections, class_names: list[str], hud: str) -> np.ndarray:
    """Boxes with class names and scores, and the HUD line (if any) in the top-left corner (in place)."""
    for box, score, label in zip(detections.boxes_xyxy, detections.scores, detections.labels):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        colour = _colour(int(label))
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, 2)
        text = f"{class_names[int(label)]} {score:.2f}"
        (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.rectangle(image, (x1, max(0, y1 - h - 4)), (x1 + w + 2, max(h + 4, y1)), colour, -1)
        cv2.putText(image, text, (x1 + 1, max(h + 1, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    if hud:
        cv2.rectangle(image, (0, 0), (8 + 8 * len(hud), 22), (0, 0, 0), -1)
        cv2.putText(image, hud, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def display_available() -> bool:
    """opencv-python aborts the whole process when it cannot open a window: check before trying."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class VideoSaver:
    """mp4 writer to a hidden partial file, renamed into place when closed: Ctrl-C still leaves a playable file,
    and a failed run never replaces the user's file with half a video."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix or '.mp4'}")
        self.writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            raise UsageError(f"--save {path}: OpenCV cannot write this file (use a .mp4 path in a writable folder)")

    def write(self, image: np.ndarray) -> None:
        self.writer.write(image)

    def close(self) -> None:
        self.writer.release()
        os.replace(self.partial, self.path)


@dataclass
class LoopStats:
    frames_read: int = 0
    processed: int = 0
    dropped: int = 0  # replaced by a newer frame before the loop could take them (live / realtime)
    reconnects: int = 0
    wall_s: float = 0.0
    end_to_end_ms: list[float] = field(default_factory=list)  # capture -> result, per processed frame
    inference_ms: list[float] = field(default_factory=list)  # network alone
    detections: int = 0
    stopped_by: str = "end of source"

    @property
    def fps(self) -> float:
        return self.processed / self.wall_s if self.wall_s else 0.0

    def summary(self) -> dict[str, float | int | str]:
        def pct(values: list[float], q: float) -> float:
            return float(np.percentile(values, q)) if values else float("nan")

        return {"frames_read": self.frames_read, "processed": self.processed, "dropped": self.dropped,
                "reconnects": self.reconnects, "fps": self.fps, "wall_s": self.wall_s,
                "e2e_p50_ms": pct(self.end_to_end_ms, 50), "e2e_p95_ms": pct(self.end_to_end_ms, 95),
                "inference_p50_ms": pct(self.inference_ms, 50), "inference_p95_ms": pct(self.inference_ms, 95),
                "detections": self.detections, "stopped_by": self.stopped_by}


def filter_classes(detections: Detections, keep: np.ndarray | None) -> Detections:
    if keep is None:
        return detections
    mask = np.isin(detections.labels, keep)
    return Detections(detections.boxes_xyxy[mask], detections.scores[mask], detections.labels[mask])


def class_filter(class_names: list[str], wanted: list[str] | None) -> np.ndarray | None:
    if not wanted:
        return None
    unknown = [name for name in wanted if name not in class_names]
    if unknown:
        raise UsageError(f"--classes: the model has no class '{unknown[0]}' (it has: {', '.join(class_names)})")
    return np.array([class_names.index(name) for name in wanted])


def run_loop(detector: FrameDetector, source: str, *, show: bool = True, save: Path | None = None,
             classes: list[str] | None = None, max_frames: int | None = None, realtime: bool = False,
             max_reconnects: int = 5, opener: Callable[[str], cv2.VideoCapture] = open_capture,
             on_frame: Callable[[Frame, Detections], None] | None = None, stall_s: float = 20.0) -> LoopStats:
    """Run until the source ends, ``max_frames`` are processed, q/Esc, or Ctrl-C; returns what it achieved."""
    keep = class_filter(detector.class_names, classes)
    if show and not display_available():
        print("note: no display found ($DISPLAY is unset): running headless; use --save out.mp4 to keep the "
              "annotated video", file=sys.stderr)
        show = False
    reader = FrameReader(source, realtime=realtime, max_reconnects=max_reconnects, opener=opener, stall_s=stall_s)
    stats, saver, fps_avg = LoopStats(), None, 0.0
    reader.start()
    start = last = time.perf_counter()
    try:
        while max_frames is None or stats.processed < max_frames:
            frame = reader.next_frame()
            if frame is None:
                break
            tensor, scale = detector.preprocess(frame.image)
            t0 = time.perf_counter()
            raw = detector.infer(tensor)
            stats.inference_ms.append((time.perf_counter() - t0) * 1e3)
            detections = filter_classes(detector.postprocess(raw, scale, frame.image.shape[:2]), keep)
            now = time.perf_counter()
            stats.end_to_end_ms.append((now - frame.captured) * 1e3)
            stats.processed += 1
            stats.detections += len(detections)
            instant = 1 / max(now - last, 1e-6)
            fps_avg, last = (instant if stats.processed == 1 else 0.9 * fps_avg + 0.1 * instant), now
            if on_frame:
                on_frame(frame, detections)
            if show or save:
                hud = f"{fps_avg:.1f} FPS  inference {stats.inference_ms[-1]:.1f} ms  {len(detections)} objects"
                image = draw(frame.image, detections, detector.class_names, hud)
                if save and saver is None:
                    saver = VideoSaver(save, reader.fps or 25.0, (image.shape[1], image.shape[0]))
                if saver:
                    saver.write(image)
                if show and _show(image):
                    stats.stopped_by = "q/Esc"
                    break
        else:
            stats.stopped_by = f"--max-frames {max_frames}"
    except KeyboardInterrupt:
        stats.stopped_by = "Ctrl-C"
    finally:
        reader.stop()
        reader.join(timeout=5)
        stats.wall_s = time.perf_counter() - start
        stats.frames_read, stats.dropped, stats.reconnects = reader.read_count, reader.dropped, reader.reconnects
        if saver:
            saver.close()
        if show:
            cv2.destroyAllWindows()
    if reader.error:
        stats.stopped_by = reader.error
    return stats


def _show(image: np.ndarray) -> bool:
    """Show a frame; True when the user asked to quit."""
    try:
        cv2.imshow(WINDOW, image)
        return (cv2.waitKey(1) & 0xFF) in QUIT_KEYS
    except cv2.error as err:
        raise EdgedetError(f"cannot show the window ({str(err).splitlines()[0][:120]}); run with --no-show") from None

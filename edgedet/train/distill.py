"""Online dense distillation: a COCO-trained teacher scores every anchor point of each augmented training batch,
and the student learns those per-point class scores (and, where the teacher is confident, its boxes) beside the
labels.

Why online and dense rather than the teacher's boxes written once (``edgedet label``): each augmented view gets its own
targets, every one of the student's classes is taught at every point (80 soft scores where the labels give one hard
box), and the scores carry what the teacher finds alike (a chair that looks like a couch). The teacher runs on the
student's own letterboxed input, at the student's size times ``scale`` (YOLOX runs at any size; NanoDet-m's 320 graph
fits a 320 student). Its points reach the student's grid level by level: each student grid takes the teacher grid with
as many cells a side (at twice the input, the teacher's stride 16 sees what the student's stride 8 sees, object size to
stride alike), else the finest coarser-strided one it divides, keeping in each block of cells the teacher point with the
best score. Scale 2 suits a student below the teacher's own size: YOLOX-Nano scored 35.1 person AP on people val images
shrunk to 160 px when run at 320, 28.4 at 160; on the same images at 320 px it scored 32.9 at 320 and 21.8 at 640
(``benchmarks/teacher_scale.py``). Teacher-only classes of an image are taught even where its dataset does not annotate
them. The teacher runs one image at a time in the training process: on one core of this project's CPUs YOLOX-Nano at 320
px made a training image take 258 ms instead of 238 ms (benchmarks/README.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from edgedet.data.formats import canonical_name
from edgedet.errors import UsageError
from edgedet.runtime.peers import PeerDetector, load_teacher
from edgedet.runtime.postprocess import STRIDES
from edgedet.runtime.session import Providers


def level_sides(imgsz: int) -> list[int]:
    """Cells a side of each grid (strides 8, 16, 32) at an input size, in the points' order."""
    return [imgsz // stride for stride in STRIDES]


def grid_blocks(student_sides: list[int], teacher_sides: list[int]) -> list[tuple[int, int]] | None:
    """For each student grid, (the teacher grid's index, cells a side of the teacher block per student cell): the
    teacher grid with as many cells a side, else the finest one it divides; None if a student grid has none."""
    blocks = []
    for side in student_sides:
        fits = [(t_side // side, level) for level, t_side in enumerate(teacher_sides) if t_side % side == 0]
        if not fits:
            return None
        block, level = min(fits)
        blocks.append((level, block))
    return blocks


def to_student_grid(boxes: np.ndarray, scores: np.ndarray, teacher_sides: list[int],
                    blocks: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's (N_t, 4) boxes and (N_t, K) scores at its grids' points -> at the student's (``grid_blocks``):
    in each block of teacher cells, the point whose best class score is highest."""
    starts = np.cumsum([0] + [side * side for side in teacher_sides])
    picked_boxes, picked_scores = [], []
    for level, block in blocks:
        side, cells = teacher_sides[level] // block, slice(starts[level], starts[level + 1])

        def blocked(values: np.ndarray) -> np.ndarray:  # (side*side, block*block, C): each student cell's block
            grid = values[cells].reshape(side, block, side, block, -1)
            return grid.transpose(0, 2, 1, 3, 4).reshape(side * side, block * block, -1)

        level_scores, level_boxes = blocked(scores), blocked(boxes)
        best = level_scores.max(-1).argmax(1)
        rows = np.arange(side * side)
        picked_scores.append(level_scores[rows, best])
        picked_boxes.append(level_boxes[rows, best])
    return np.concatenate(picked_boxes), np.concatenate(picked_scores)


class DenseTeacher:
    """``annotate(images, targets)`` adds ``teacher_scores`` (N, K), ``teacher_boxes`` (N, 4) and
    ``teacher_classes`` (K,) to each target, N the student's points, K its classes (those the teacher lacks are
    masked out)."""

    def __init__(self, spec: str, class_names: list[str], imgsz: int, *, scale: int = 1, threads: int = 1,
                 providers: Providers | None = None) -> None:
        teacher = load_teacher(spec, class_names=class_names, threads=threads, size=imgsz * scale,
                               providers=providers)
        if not isinstance(teacher, PeerDetector):
            raise UsageError(f"{spec}: dense distillation takes another project's detector through an adapter "
                             "(yolox, nanodet, ...); an edgedet export can teach through `edgedet label` instead")
        self.teacher_sides = level_sides(teacher.input_size)
        found = len(teacher.dense(np.full((imgsz, imgsz, 3), 114, np.uint8))[0])
        blocks = grid_blocks(level_sides(imgsz), self.teacher_sides)
        if found != sum(side * side for side in self.teacher_sides) or blocks is None:
            raise UsageError(f"{spec}: at {teacher.input_size} px it scores {found} points, grids of "
                             f"{self.teacher_sides} cells a side if strides 8, 16, 32; the student's at {imgsz} px "
                             f"are {level_sides(imgsz)}: dense distillation needs each to be a teacher grid or a "
                             "whole fraction of one. YOLOX runs at any size (distill_scale); or label offline "
                             "with `edgedet label`")
        own = [canonical_name(n) for n in class_names]
        self.student_columns = torch.tensor([own.index(canonical_name(n)) for n in teacher.class_names])
        self.known = torch.zeros(len(class_names), dtype=torch.bool)
        self.known[self.student_columns] = True
        self.teacher, self.blocks, self.num_classes = teacher, blocks, len(class_names)

    def annotate(self, images: torch.Tensor, targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """(B, 3, S, S) uint8 RGB training batch (as the loader gives it) -> the targets with the teacher's."""
        annotated = []
        for image, target in zip(images, targets):
            bgr = np.ascontiguousarray(image.permute(1, 2, 0).numpy()[:, :, ::-1])
            boxes, scores = to_student_grid(*self.teacher.dense(bgr), self.teacher_sides, self.blocks)
            full = torch.zeros(len(scores), self.num_classes)
            full[:, self.student_columns] = torch.from_numpy(scores.astype(np.float32))
            annotated.append(target | {"teacher_scores": full, "teacher_classes": self.known,
                                       "teacher_boxes": torch.from_numpy(boxes.astype(np.float32))})
        return annotated

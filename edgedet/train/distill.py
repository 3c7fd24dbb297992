"""Online dense distillation: a COCO-trained teacher scores every anchor point of each augmented training batch,
and the student learns those per-point class scores (and, where the teacher is confident, its boxes) beside the
labels.

Why online and dense rather than the teacher's boxes written once (``edgedet label``): each augmented view gets its
own targets, every one of the student's classes is taught at every point (80 soft scores where the labels give one
hard box), and the scores carry what the teacher finds alike (a chair that looks like a couch). The teacher must
see the student's grid: it runs on the student's own letterboxed input, at the same size, with strides 8, 16, 32 in
the same order (YOLOX runs at any size; NanoDet-m's 320 graph fits a 320 student; the check below counts the points,
the adapters' tests check their order). Teacher-only classes of an image are taught even where its dataset does not
annotate them. The teacher runs one image at a time in the training process: on one core of this project's CPUs
YOLOX-Nano at 320 px made a training image take 258 ms instead of 238 ms (benchmarks/README.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from edgedet.data.formats import canonical_name
from edgedet.errors import UsageError
from edgedet.runtime.peers import PeerDetector, load_teacher
from edgedet.runtime.postprocess import anchor_points
from edgedet.runtime.session import Providers


class DenseTeacher:
    """``annotate(images, targets)`` adds ``teacher_scores`` (N, K), ``teacher_boxes`` (N, 4) and
    ``teacher_classes`` (K,) to each target, K the student's classes (those the teacher lacks are masked out)."""

    def __init__(self, spec: str, class_names: list[str], imgsz: int, *, threads: int = 1,
                 providers: Providers | None = None) -> None:
        teacher = load_teacher(spec, class_names=class_names, threads=threads, size=imgsz, providers=providers)
        if not isinstance(teacher, PeerDetector):
            raise UsageError(f"{spec}: dense distillation takes another project's detector through an adapter "
                             "(yolox, nanodet, ...); an edgedet export can teach through `edgedet label` instead")
        points = len(anchor_points(imgsz)[0])
        found = len(teacher.dense(np.full((imgsz, imgsz, 3), 114, np.uint8))[0])
        if found != points:
            raise UsageError(f"{spec}: at {teacher.input_size} px it scores {found} points, the student's grid at "
                             f"{imgsz} px has {points}; dense distillation needs the student's grid (strides 8, 16, "
                             "32 at its input size): YOLOX runs at any size, or label offline with `edgedet label`")
        own = [canonical_name(n) for n in class_names]
        self.student_columns = torch.tensor([own.index(canonical_name(n)) for n in teacher.class_names])
        self.known = torch.zeros(len(class_names), dtype=torch.bool)
        self.known[self.student_columns] = True
        self.teacher, self.num_classes = teacher, len(class_names)

    def annotate(self, images: torch.Tensor, targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """(B, 3, S, S) uint8 RGB training batch (as the loader gives it) -> the targets with the teacher's."""
        annotated = []
        for image, target in zip(images, targets):
            bgr = np.ascontiguousarray(image.permute(1, 2, 0).numpy()[:, :, ::-1])
            boxes, scores = self.teacher.dense(bgr)
            full = torch.zeros(len(scores), self.num_classes)
            full[:, self.student_columns] = torch.from_numpy(scores.astype(np.float32))
            annotated.append(target | {"teacher_scores": full, "teacher_classes": self.known,
                                       "teacher_boxes": torch.from_numpy(boxes.astype(np.float32))})
        return annotated

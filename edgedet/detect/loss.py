"""Detection loss: prior-box (static, ATSS-like) or task-aligned (TOOD / PP-YOLOE) label assignment.

Each ground-truth box takes the ``top_k`` candidate points (inside the box, or its centre cell) that best match it:
on scale-aware prior boxes (``static``, the default) or on ``score^alpha * IoU^beta`` (task-aligned). Classification
is trained toward the IoU of each positive's predicted box (soft targets, quality focal loss) and boxes with CIoU, so
the score the detector reports also ranks its box quality, which is what COCO AP rewards. Why static by default: on
small data task-aligned matching feeds back the model's own early mistakes. Teacher labels carry a score: it scales
the soft classification target and, through it, the box weight, so a doubtful teacher box teaches less than ground
truth. Points inside crowd regions that are not positives are ignored by the classification loss, and so is every
class a target marks as not ``annotated`` in its image (a dataset that does not label chairs says nothing about
chairs). A dense teacher (``edgedet.train.distill``) adds ``loss_distill``: quality focal loss toward its score of
every class at every point, and CIoU toward its box where it is confident.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou, complete_box_iou_loss

from edgedet.detect import BOX_WEIGHTINGS
from edgedet.errors import UsageError
from edgedet.runtime.postprocess import REG_CLIP

PRIOR_SIDE = 5.0  # prior box side in strides, for the static assignment
DISTILL_BOX_SCORE = 0.2  # a dense teacher's box is learnt where its best class scores above this


def decode_boxes(reg: torch.Tensor, points: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """(B, N, 4) raw regression -> (B, N, 4) xyxy boxes in model pixels. The loss needs these boxes differentiable,
    hence torch; inference decodes with ``edgedet.runtime.postprocess.decode``."""
    distances = reg.clamp(max=REG_CLIP).exp() * strides[:, None]  # (B, N, 4) l, t, r, b
    return torch.cat([points - distances[..., :2], points + distances[..., 2:]], -1)


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """A loss normaliser averaged over the processes of a distributed run (itself otherwise), so that DDP's average
    of the ranks' gradients equals one process's gradient on the whole global batch."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    shared = value.detach().clone()
    torch.distributed.all_reduce(shared)
    return shared / torch.distributed.get_world_size()


def quality_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """GFL's quality focal loss: BCE toward soft targets, scaled by |p - t|^gamma so that the thousands of easy
    background points stop drowning the few positives (plain BCE needs many more steps than small data gives)."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return bce * (logits.sigmoid() - target).abs().pow(gamma)


def check_targets(targets: list[dict[str, torch.Tensor]], num_classes: int) -> None:
    """Malformed targets fail here, with the image and the box, not as a NaN many steps later."""
    for index, target in enumerate(targets):
        boxes, labels = target["boxes"], target["labels"]
        if boxes.ndim != 2 or boxes.shape[-1] != 4 or len(labels) != len(boxes):
            raise UsageError(f"target {index}: boxes must be (N, 4) with N labels, got {tuple(boxes.shape)} boxes "
                             f"and {len(labels)} labels")
        bad = ~torch.isfinite(boxes).all(1) | (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        if bad.any():
            raise UsageError(f"target {index}: degenerate box {boxes[bad][0].tolist()} (need x2 > x1, y2 > y1)")
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise UsageError(f"target {index}: label {labels.max().item()} outside 0..{num_classes - 1}")


def _pad(targets: list[dict[str, torch.Tensor]], key: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack per-image box lists into (B, M, 4) with a (B, M) validity mask."""
    count = max(1, max(len(t[key]) for t in targets))
    boxes = torch.zeros(len(targets), count, 4, device=device)
    valid = torch.zeros(len(targets), count, dtype=torch.bool, device=device)
    for i, target in enumerate(targets):
        boxes[i, : len(target[key])] = target[key].to(device)
        valid[i, : len(target[key])] = True
    return boxes, valid


class DetectionLoss:
    def __init__(self, num_classes: int, *, top_k: int = 10, alpha: float = 0.5, beta: float = 6.0,
                 box_weight: float = 2.0, static: bool = True, box_weighting: str = "iou",
                 distill_weight: float = 1.0) -> None:
        if box_weighting not in BOX_WEIGHTINGS:
            raise UsageError(f"box weighting '{box_weighting}': use one of {', '.join(BOX_WEIGHTINGS)}")
        self.num_classes, self.top_k, self.box_weight = num_classes, top_k, box_weight
        self.alpha, self.beta = alpha, beta
        self.static = static  # the engine may switch to task-aligned after some epochs (TrainConfig)
        self.box_weighting = box_weighting
        self.distill_weight = distill_weight  # of loss_distill, when the targets carry a dense teacher's outputs

    @torch.no_grad()
    def assign(self, scores: torch.Tensor, boxes: torch.Tensor, points: torch.Tensor, strides: torch.Tensor,
               gt_boxes: torch.Tensor, gt_labels: torch.Tensor, gt_valid: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per point: positive mask (B, N), matched gt index (B, N) and soft classification target (B, N)."""
        batch, count = gt_labels.shape
        x, y = points[:, 0], points[:, 1]  # (N,)
        inside = ((x > gt_boxes[..., 0:1]) & (x < gt_boxes[..., 2:3]) & (y > gt_boxes[..., 1:2])
                  & (y < gt_boxes[..., 3:4]))  # (B, M, N)
        centre = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2  # (B, M, 2)
        near_centre = ((points - centre[..., None, :]).abs().amax(-1) < strides)  # (B, M, N): the centre cell
        candidate = (inside | near_centre) & gt_valid[..., None]
        iou = torch.stack([box_iou(g, b) for g, b in zip(gt_boxes, boxes)])  # (B, M, N)
        if self.static:  # match on scale-aware prior boxes (ATSS-like), not on the model's own predictions
            half = PRIOR_SIDE / 2 * strides[:, None]
            priors = torch.cat([points - half, points + half], 1)  # (N, 4)
            iou_for_matching = torch.stack([box_iou(g, priors) for g in gt_boxes])
            metric = iou_for_matching * candidate
        else:
            iou_for_matching = iou
            class_score = scores.gather(2, gt_labels[:, None, :].expand(-1, scores.shape[1], -1)).transpose(1, 2)
            metric = class_score.pow(self.alpha) * iou.pow(self.beta) * candidate  # (B, M, N)
        top = metric.topk(min(self.top_k, metric.shape[-1]), dim=-1).indices  # (B, M, k)
        chosen = torch.zeros_like(candidate).scatter_(-1, top, True) & candidate
        # a point claimed by several boxes goes to the one it overlaps most
        overlap = torch.where(chosen, iou_for_matching, torch.full_like(iou, -1.0))
        best_gt = overlap.argmax(1)  # (B, N)
        positive = chosen.any(1)  # (B, N)
        chosen = chosen & (torch.arange(count, device=iou.device)[None, :, None] == best_gt[:, None, :])
        if self.static:  # classification learns the quality of the boxes it has
            return positive, best_gt, (iou * chosen).amax(1)
        aligned = metric * chosen
        norm = aligned.amax(-1, keepdim=True).clamp(min=1e-9)  # (B, M, 1): each box's best point gets its IoU
        target = (aligned / norm * (iou * chosen).amax(-1, keepdim=True)).amax(1)  # (B, N)
        return positive, best_gt, target

    def __call__(self, raw: torch.Tensor, points: torch.Tensor, strides: torch.Tensor,
                 targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """``raw`` (B, N, 4 + K) head output -> {"loss_cls", "loss_box"} (their sum is what to minimise)."""
        reg, logits = raw[..., :4], raw[..., 4:]
        boxes = decode_boxes(reg, points, strides)
        gt_boxes, gt_valid = _pad(targets, "boxes", raw.device)
        gt_labels = torch.zeros(gt_valid.shape, dtype=torch.long, device=raw.device)
        for i, target in enumerate(targets):
            gt_labels[i, : len(target["labels"])] = target["labels"].to(raw.device)
        positive, best_gt, soft = self.assign(logits.detach().sigmoid(), boxes.detach(), points, strides,
                                                 gt_boxes, gt_labels, gt_valid)
        label_score = self._label_scores(targets, gt_valid).gather(1, best_gt)  # (B, N) 1 unless a teacher doubted
        soft = soft * label_score
        cls_target = torch.zeros_like(logits)
        point_labels = gt_labels.gather(1, best_gt)  # (B, N)
        cls_target.scatter_(2, point_labels[..., None], (soft * positive)[..., None])
        weight = (~self._in_crowd(targets, points, raw.device) | positive).float()[..., None]  # (B, N, 1)
        weight = weight * self._annotated(targets, logits)  # (B, N, K)
        norm = mean_over_ranks(soft.sum()).clamp(min=1.0)
        loss_cls = (quality_focal_loss(logits, cls_target) * weight).sum() / norm
        box_weights = self._box_weights(soft, logits.detach().sigmoid(), point_labels, label_score) * positive
        box_norm = mean_over_ranks(box_weights.sum()).clamp(min=1.0 if self.box_weighting == "iou" else 1e-6)
        if positive.any():
            matched = gt_boxes.gather(1, best_gt[..., None].expand(-1, -1, 4))[positive]  # (P, 4)
            box_losses = complete_box_iou_loss(boxes[positive], matched, reduction="none")
            loss_box = (box_losses * box_weights[positive]).sum() / box_norm
        else:
            loss_box = boxes.sum() * 0.0
        losses = {"loss_cls": loss_cls, "loss_box": self.box_weight * loss_box}
        if "teacher_scores" in targets[0]:
            losses["loss_distill"] = self.distill_weight * self._distill(logits, boxes, targets)
        return losses

    def _distill(self, logits: torch.Tensor, boxes: torch.Tensor, targets: list[dict[str, torch.Tensor]]
                 ) -> torch.Tensor:
        """Quality focal loss toward the teacher's score of each class it knows at every point (normalised by the
        sum of its best scores, as the labels' loss by its positives), plus CIoU toward its box where its best score
        passes ``DISTILL_BOX_SCORE``, weighted by that score (a teacher box beside the point, as a label's centre
        cell may be, pulls the student's box to reach it, as the labels' loss does)."""
        known = torch.stack([t["teacher_classes"] for t in targets]).float()[:, None, :]  # (B, 1, K)
        scores = torch.stack([t["teacher_scores"] for t in targets]) * known  # (B, N, K)
        teacher_boxes = torch.stack([t["teacher_boxes"] for t in targets])  # (B, N, 4)
        best = scores.amax(-1)  # (B, N)
        loss_cls = (quality_focal_loss(logits, scores) * known).sum() / mean_over_ranks(best.sum()).clamp(min=1.0)
        confident = best > DISTILL_BOX_SCORE
        box_norm = mean_over_ranks((best * confident).sum()).clamp(min=1.0)  # on every rank, boxes or not
        if not confident.any():
            return loss_cls + boxes.sum() * 0.0
        box_losses = complete_box_iou_loss(boxes[confident], teacher_boxes[confident], reduction="none")
        return loss_cls + self.box_weight * (box_losses * best[confident]).sum() / box_norm

    def _box_weights(self, soft: torch.Tensor, scores: torch.Tensor, point_labels: torch.Tensor,
                     label_score: torch.Tensor) -> torch.Tensor:
        """(B, N) each point's box-loss weight under ``box_weighting`` (see ``BOX_WEIGHTINGS``), also weighted by its
        label's score (``soft`` already carries it); only positives' weights are used."""
        if self.box_weighting == "iou":
            return soft
        if self.box_weighting == "score":
            weights = scores.gather(2, point_labels[..., None])[..., 0]  # (B, N)
        else:
            weights = torch.ones_like(soft)
        return weights * label_score

    @staticmethod
    def _label_scores(targets: list[dict[str, torch.Tensor]], gt_valid: torch.Tensor) -> torch.Tensor:
        """(B, M) each box's label score: a teacher's confidence, 1 for ground truth (and targets without scores)."""
        scores = torch.ones(gt_valid.shape, device=gt_valid.device)
        for i, target in enumerate(targets):
            if "scores" in target:
                scores[i, : len(target["scores"])] = target["scores"].to(gt_valid.device)
        return scores

    @staticmethod
    def _annotated(targets: list[dict[str, torch.Tensor]], logits: torch.Tensor) -> torch.Tensor:
        """(B, 1, K) 1 where the image's dataset annotates the class (all, unless a target says otherwise)."""
        rows = [t["annotated"].to(logits.device) if "annotated" in t else torch.ones(logits.shape[-1], dtype=torch.bool,
                device=logits.device) for t in targets]
        return torch.stack(rows).float()[:, None, :]

    @staticmethod
    def _in_crowd(targets: list[dict[str, torch.Tensor]], points: torch.Tensor, device: torch.device) -> torch.Tensor:
        """(B, N) points inside any crowd region of their image."""
        if not any(len(t.get("crowd_boxes", ())) for t in targets):
            return torch.zeros(len(targets), len(points), dtype=torch.bool, device=device)
        crowd, valid = _pad([{"crowd_boxes": t.get("crowd_boxes", torch.zeros(0, 4))} for t in targets],
                            "crowd_boxes", device)
        x, y = points[:, 0], points[:, 1]
        inside = ((x > crowd[..., 0:1]) & (x < crowd[..., 2:3]) & (y > crowd[..., 1:2]) & (y < crowd[..., 3:4]))
        return (inside & valid[..., None]).any(1)

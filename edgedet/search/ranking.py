"""Does the supernet rank architectures as stand-alone training does? A search is only as good as that ranking.

An architecture's supernet score is the searched supernet's AP with the path fixed to that architecture (every
layer runs its op, at the architecture's input size), with the weights the search left, on θ's held-apart images
of the search's first dataset (training images the weights never trained on; never val). Kendall τ between those
scores and the architectures' stand-alone trained AP says how far the search can be trusted to order them.

Two readings of the BatchNorm statistics, since in the single-path supernet each candidate's statistics come from
the sub-batches that drew it under other layers' random choices:

- ``inherited``: the running statistics as the search left them;
- ``recalibrated``: reset and re-estimated on the fixed path over a few batches of the weights' images, letterboxed
  without augmentation (single-path one-shot NAS's usual fix).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from scipy.stats import kendalltau
from torch import nn

from edgedet.data.coco import CocoDetection, UnionDetection
from edgedet.data.transforms import eval_transforms
from edgedet.detect.predict import TorchPredictor
from edgedet.errors import UsageError
from edgedet.evaluate.images import evaluate_predictor, evaluate_subsets
from edgedet.search.config import SearchConfig
from edgedet.search.supernet import Supernet
from edgedet.space.archspec import ArchSpec
from edgedet.runtime.postprocess import anchor_points
from edgedet.space.spaces import OP_NAMES
from edgedet.train.checkpoint import read_checkpoint

if TYPE_CHECKING:
    from edgedet.search.loop import Searcher

SCORINGS = ("inherited", "recalibrated")
RECALIBRATION_BATCHES = 8  # of 16 images: BatchNorm's mean and variance settle well within 128 images


@contextmanager
def fixed_path(model: Supernet, arch: ArchSpec) -> Iterator[None]:
    """Inside, the supernet runs ``arch`` alone (every draw picks its ops) at ``arch``'s input size; θ, the input size
    and every BatchNorm statistic are as before after it."""
    backbone = model.backbone
    if (arch.space, arch.width_mult) != (backbone.space.name, backbone.space.width_mult):
        raise UsageError(f"{arch}: not in the searched space ({backbone.space.name} at width "
                         f"{backbone.space.width_mult:g})")
    layers = torch.arange(len(backbone.layers))
    ops = torch.tensor([OP_NAMES.index(op) for op in arch.ops])
    if len(ops) != len(layers) or not backbone.mask[layers, ops].all():
        raise UsageError(f"{arch}: an op the searched space does not allow at its layer")
    theta, reference, points, strides = backbone.theta.detach().clone(), model.arch, model.points, model.strides
    statistics = {key: value.clone() for key, value in model.state_dict().items()
                  if key.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    with torch.no_grad():
        backbone.theta.fill_(-1e9)  # far below any Gumbel noise: every draw is the fixed op
        backbone.theta[layers, ops] = 0.0
    model.arch = reference.with_imgsz(arch.imgsz)
    new_points, new_strides = anchor_points(arch.imgsz)
    model.points, model.strides = (torch.from_numpy(new_points).to(points.device),
                                   torch.from_numpy(new_strides).to(strides.device))
    try:
        yield
    finally:
        with torch.no_grad():
            backbone.theta.copy_(theta)
        model.arch, model.points, model.strides = reference, points, strides
        model.load_state_dict(statistics, strict=False)


@torch.no_grad()
def recalibrate(model: nn.Module, batches: list[torch.Tensor]) -> None:
    """Every BatchNorm's running statistics re-estimated as the plain average over ``batches`` (the path in use)."""
    norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average, not an exponential one
    model.train()
    for images in batches:
        model.raw(images)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.eval()


@dataclass
class SearchedSupernet:
    """A finished search's supernet with its images: θ's held-apart ones of the first dataset to score on, the
    weights' ones to recalibrate with."""

    model: Supernet
    class_names: list[str]
    dataset: CocoDetection | UnionDetection  # the search's training images
    score_ids: list[int]  # the first dataset's image ids among θ's images
    calibration: list[int]  # indices into ``dataset`` among the weights' images
    _batches: dict[int, list[torch.Tensor]] = field(default_factory=dict, repr=False)  # uint8, per input size

    @property
    def first(self) -> CocoDetection:
        """The first dataset's train split: what the scores are measured on."""
        return self.dataset.parts[0] if isinstance(self.dataset, UnionDetection) else self.dataset

    @classmethod
    def load(cls, run: Path, *, max_images: int | None = 300) -> "SearchedSupernet":
        """A finished search's, rebuilt from its folder."""
        from edgedet.search.loop import Searcher  # the search's own split and supernet, rebuilt from its settings

        if not (run / "last.pt").is_file():
            raise UsageError(f"{run} holds no finished search (no last.pt): run `edgedet search` into it first")
        config = SearchConfig.from_dict(json.loads((run / "config.json").read_text()))
        searcher = Searcher(config, run)
        searcher.model.load_state_dict(read_checkpoint(run / "last.pt")["model"])
        return cls.of(searcher, max_images=max_images)

    @classmethod
    def of(cls, searcher: "Searcher", *, max_images: int | None = 300) -> "SearchedSupernet":
        """A searcher's supernet as its weights stand, scored on up to ``max_images`` of θ's images."""
        supernet = cls(searcher.model.eval(), searcher.class_names, searcher.dataset, [], searcher.weight_images)
        first = supernet.first
        supernet.score_ids = [first.image_ids[i] for i in searcher.theta_images if i < len(first)][:max_images]
        return supernet

    def score(self, arch: ArchSpec, scoring: str) -> float:
        """The supernet's AP for ``arch`` on the scoring images, its BatchNorm statistics read as ``scoring`` says."""
        return self.scores(arch, scoring)[0]

    def scores(self, arch: ArchSpec, scoring: str, folds: int = 0) -> tuple[float, list[float]]:
        """``score`` and, from the same detections, the AP on each of ``folds`` disjoint parts of the scoring images
        (every ``folds``-th image; fewer parts when fewer images): the paired spread between two architectures'
        fold APs is how far their scores can be told apart."""
        if scoring not in SCORINGS:
            raise UsageError(f"scoring '{scoring}': use one of {', '.join(SCORINGS)}")
        with fixed_path(self.model, arch):
            if scoring == "recalibrated":
                recalibrate(self.model, self._calibration_batches(arch.imgsz))
            report, results = evaluate_predictor(TorchPredictor(self.model.eval()), self.first.ann_file,
                                                 self.first.image_dir, self.class_names, image_ids=self.score_ids)
        parts = [self.score_ids[fold::folds] for fold in range(min(folds, len(self.score_ids)))]
        return float(report.metrics["AP"]), [float(part.metrics["AP"]) for part in
                                             evaluate_subsets(results, self.first.ann_file, self.class_names, parts)]

    def _calibration_batches(self, imgsz: int, batch: int = 16) -> list[torch.Tensor]:
        """The recalibration images at ``imgsz``, decoded once per input size (every architecture at it reuses them)."""
        if imgsz not in self._batches:
            plain = self.dataset.with_transforms(eval_transforms(imgsz))
            draw = min(len(self.calibration), RECALIBRATION_BATCHES * batch)
            indices = random.Random(0).sample(self.calibration, draw)  # seeded: every architecture on the same ones
            self._batches[imgsz] = [torch.stack([plain[i][0] for i in indices[start:start + batch]])
                                    for start in range(0, len(indices), batch)]
        device = next(self.model.parameters()).device
        return [images.float().to(device) for images in self._batches[imgsz]]


def ranking_check(supernet: SearchedSupernet, archs: dict[str, ArchSpec], trained_ap: dict[str, float]
                  ) -> dict[str, Any]:
    """Each architecture's supernet score under every scoring, and per scoring Kendall τ (with its p-value) against
    the trained AP; at least 3 architectures (τ of fewer means nothing)."""
    if len(archs) < 3:
        raise UsageError(f"a ranking check needs at least 3 architectures, got {len(archs)}")
    return rank_agreement({scoring: {name: supernet.score(arch, scoring) for name, arch in archs.items()}
                           for scoring in SCORINGS}, trained_ap)


def rank_agreement(scores: dict[str, dict[str, float]], trained_ap: dict[str, float]) -> dict[str, Any]:
    """Per scoring, Kendall τ (with its p-value) between supernet scores already taken and a trained AP: the same
    scores checked against the architectures trained under another recipe."""
    names = list(trained_ap)
    result: dict[str, Any] = {"archs": len(names), "scores": scores}
    for scoring, by_name in scores.items():
        tau = kendalltau([by_name[n] for n in names], [trained_ap[n] for n in names])
        result[f"kendall_tau_{scoring}"] = float(tau.statistic)
        result[f"kendall_p_{scoring}"] = float(tau.pvalue)
    return result

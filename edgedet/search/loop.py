"""The search: FBNet's schedule on a detection-aware supernet, for one device or several.

Schedule (``E`` epochs in all): the first ``warmup_epochs`` train the weights only (θ stays uniform, every sample
draws its own architecture); every later epoch interleaves weight steps on 80% of the training images with θ steps
on the other 20% (a fixed, seeded split), about four weight steps per θ step so both loaders end together.
Several ``data`` folders search on their union (classes matched by name), the 20% drawn from all of it.
Weights: SGD (momentum 0.9) with a short linear warm-up then cosine, trained on the detection loss alone (the
latency factor does not depend on them; multiplying by it would only rescale their learning rate). θ: Adam
(lr 0.01·90/E: the paper's 0.01, stretched to E epochs like the temperature; weight decay 5e-4) on
``edgedet.search.latency.LatencyLoss``. Gumbel temperature
``τ_e = 5 · exp(−0.045 · 90/E · e)``: the paper's per-epoch decay over 90 epochs, stretched to ``E``.

Run folder ``runs/search/<name>/``:

- ``config.json``: the resolved settings (``--resume`` reads them back);
- ``log.csv``: one row per epoch: ``epoch, phase (warmup|search), temperature, lr``, the θ steps' means of ``loss``
  (the search loss), ``loss_det``, ``lat_factor`` (α·log(LAT')^β), ``target_factor``, ``lat_norm`` (R / R_floor,
  at least 1), the weight steps' mean ``loss_det_w``, ``ms_<device>`` (expected latency under θ at the epoch's end),
  ``entropy`` (mean over layers of θ's entropy, nats), ``images_per_s`` and ``epoch_s``;
- ``last.pt``: supernet, both optimizers, scheduler, history, RNG states (atomic; ``--resume`` continues exactly);
- ``arch.json``: the derived ArchSpec; its provenance holds per device the predicted, target, reference and fastest
  latency, θ's probabilities per layer, the departure costs the derivation used (pretrained lite0, measured at the
  search's input size), the settings and the search's wall time; with several ``input_sizes`` or the prior's
  verification also each size's derivations and supernet scores (with fold APs), the reference's size
  (``reference_size``), the prior-only derivation's pick and θ's with its fold gap to it (``theta_derivation``,
  ``theta_vs_prior_only``; ``Searcher._choose``);
- ``probs.png``: choice probabilities per layer over the epochs.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress, TaskID
from torch.utils.data import Subset

from edgedet import __version__
from edgedet.data.coco import CocoDetection, UnionDetection, training_set
from edgedet.data.transforms import eval_transforms, train_transforms
from edgedet.errors import EdgedetError, UsageError
from edgedet.io import atomic_write_json
from edgedet.progress import progress_track, stderr
from edgedet.search.config import SearchConfig
from edgedet.search.derive import departure_scores, derive_ops, to_arch
from edgedet.search.latency import DeviceLatency, LatencyLoss
from edgedet.search.plot import plot_probs
from edgedet.search.supernet import Supernet
from edgedet.space.archspec import ArchSpec
from edgedet.space.spaces import OP_NAMES, SearchSpace, get_space
from edgedet.stats import fold_gap
from edgedet.train.checkpoint import read_checkpoint, save_checkpoint
from edgedet.train.common import (WarmupCosine, interrupted_message, make_loader, param_groups, restore_rng_state,
                                  resume_path, rng_state, seed_everything, select_device, step_progress, to_device,
                                  write_log_csv)

DEPARTURE_IMAGES = 16  # images that measure the departure costs; their time grows linearly with it
SCORE_FOLDS = 5  # parts of θ's held-apart images on which two derivations' scores are compared
THETA_CHUNK = 4  # images per θ forward in hybrid mode: the mixture of a batch of 8 at 320 peaks at 9.5 GB


def chunks(images: torch.Tensor, targets: list[dict[str, Any]], size: int
           ) -> Iterator[tuple[torch.Tensor, list[dict[str, Any]], float]]:
    """(images, targets, share of the batch) in pieces of ``size``: losses scaled by their share and backpropagated
    one by one add up to the whole batch's gradient, at one piece's activation memory."""
    for start in range(0, len(images), size):
        piece = images[start:start + size]
        yield piece, targets[start:start + size], len(piece) / len(images)


def temperature(epoch: int, epochs: int, initial: float = 5.0, decay: float = 0.045) -> float:
    """Gumbel-softmax temperature during ``epoch`` (0-based) of ``epochs``: FBNet's exp(−0.045) per epoch of 90."""
    return initial * math.exp(-decay * 90.0 / epochs * epoch)


def split_indices(count: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(weight images, θ images): a fixed seeded shuffle, ``fraction`` of it (at least one image) for θ."""
    if count < 2:
        raise UsageError(f"the search needs at least 2 training images (weights and θ train on separate ones), "
                         f"got {count}")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    cut = min(count - 1, max(1, round(count * fraction)))
    return sorted(order[cut:]), sorted(order[:cut])


def load_devices(config: SearchConfig, space: SearchSpace, imgsz: int) -> list[DeviceLatency]:
    """Each ``--device`` resolved (``host`` is measured on first use) with its LUT table and target."""
    from edgedet.devices.builder import get_or_build_profile

    targets = config.target_ms * len(config.devices) if len(config.target_ms) == 1 else config.target_ms
    devices, seen = [], {}
    for index, name in enumerate(config.devices):
        profile = get_or_build_profile(name, space, imgsz, config.precision)
        if profile.id in seen:  # an alias of a device already given would count it twice
            raise UsageError(f"--device {seen[profile.id]} and --device {name} are one profile ({profile.id}): "
                             "give each device once")
        seen[profile.id] = name
        model = profile.latency_model(config.precision)
        devices.append(DeviceLatency.from_model(name, model, space, imgsz, targets[index] if targets else None))
    return devices


def mean_entropy(probs: torch.Tensor) -> float:
    """Mean over layers of the entropy (nats) of the op distribution: log(9) uniform, 0 decided."""
    return float(-torch.special.xlogy(probs, probs).sum(-1).mean())


@contextmanager
def frozen(params: list[torch.nn.Parameter]) -> Iterator[None]:
    """No gradients for ``params`` inside: θ steps skip the weight gradients they would throw away."""
    for param in params:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in params:
            param.requires_grad_(True)


@dataclass
class SearchResult:
    arch: ArchSpec  # with provenance
    path: Path  # arch.json
    devices: list[dict[str, Any]]  # per device: name, precision, predicted_ms, target_ms, reference_ms, fastest_ms


class Searcher:
    """Builds the supernet, data and optimizers from a ``SearchConfig``; ``fit()`` runs the schedule above."""

    def __init__(self, config: SearchConfig, run_dir: Path) -> None:
        self.config, self.run_dir = config, run_dir
        self.space = get_space(config.space)
        self.imgsz = config.imgsz or self.space.default_imgsz
        self.devices = load_devices(config, self.space, self.imgsz)
        self._devices_by_size = {self.imgsz: self.devices}
        self.input_sizes = config.input_sizes or [self.imgsz]  # the sizes the derivation chooses among
        self.uniform = np.where(np.isfinite(self.devices[0].table), 0.0, -np.inf)  # θ ignored
        if all(self._derive(self.uniform, size) is None for size in self.input_sizes):  # fail now, before any
            derive_ops(self.uniform, self._devices_at(self.input_sizes[-1]))  # training: it says what is too tight
        self.device = select_device(config.device)
        self.mode = config.mode if config.mode != "auto" else "mixture" if self.device.type == "cuda" else "single"
        self.weight_path = "mixture" if self.mode == "mixture" else "single"
        self.theta_path = "single" if self.mode == "single" else "mixture"
        seed_everything(config.seed)
        if not config.data:
            raise UsageError("no search data: give --data DIR (repeat it to search on several datasets)")
        dataset = training_set([Path(d) for d in config.data], config.classes, train_transforms(self.imgsz))
        self.dataset, self.class_names = dataset, dataset.class_names
        weight_images, theta_images = split_indices(len(dataset), config.theta_fraction, config.seed)
        self.weight_images, self.theta_images = weight_images, theta_images
        self.weight_loader = make_loader(Subset(dataset, weight_images), batch=config.batch, workers=config.workers)
        self.theta_loader = make_loader(Subset(dataset, theta_images), batch=config.batch, workers=config.workers)
        self.pretrained = config.pretrained and self.space.name == "lite0" and self.space.width_mult == 1.0
        if config.batch_norm == "frozen" and not self.pretrained:
            raise UsageError("batch_norm frozen keeps the inherited ImageNet statistics: it needs the lite0 space "
                             "with pretrained weights (or use sub_batch or per_batch)")
        self.model = Supernet(self.space, self.imgsz, len(self.class_names), mode=self.weight_path,
                              pretrained=self.pretrained, neck_channels=config.neck_channels,
                              per_batch=config.batch_norm == "per_batch")
        self.model.to(self.device, memory_format=torch.channels_last)
        self.departure_costs = self._departure_costs(dataset, theta_images) if self.pretrained else None
        self.weights = self.model.weight_parameters()
        self.optimizer = torch.optim.SGD(param_groups(self.weights, config.weight_decay), lr=config.lr, momentum=0.9,
                                         nesterov=True)
        steps = len(self.weight_loader)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, WarmupCosine(int(config.lr_warmup_epochs * steps), config.epochs * steps, 0.05))
        self.arch_optimizer = torch.optim.Adam(self.model.arch_parameters(), lr=arch_lr(config),
                                               weight_decay=config.arch_weight_decay)
        self.latency = LatencyLoss(self.devices, objective=config.objective, alpha=config.alpha, beta=config.beta,
                                   target_weight=config.target_weight).to(self.device)
        self.history: list[dict[str, Any]] = []
        self.probs_history = [self._probs()]
        self.start_epoch, self.search_s = 0, 0.0

    def _departure_costs(self, dataset: CocoDetection | UnionDetection, theta_images: list[int]) -> np.ndarray:
        """The inherited candidates' departure costs (``SuperBackbone.departure_costs``), before any training, on up
        to ``DEPARTURE_IMAGES`` of θ's images, letterboxed without augmentation."""
        plain = dataset.with_transforms(eval_transforms(self.imgsz))
        images = torch.stack([plain[i][0] for i in theta_images[:DEPARTURE_IMAGES]]).float()
        return self.model.departure_costs(images.to(self.device, memory_format=torch.channels_last))

    # --- state -------------------------------------------------------------------------------------------------
    def _probs(self) -> np.ndarray:
        return self.model.backbone.probs().detach().cpu().numpy()

    def state(self, epoch: int) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "arch_optimizer": self.arch_optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "epoch": epoch, "arch": self.model.export().to_json(), "config": asdict(self.config),
            "class_names": self.class_names, "history": self.history,
            "probs_history": [p.tolist() for p in self.probs_history], "search_s": self.search_s,
            "rng": rng_state(), "version": __version__,
        }

    def resume(self, path: Path) -> None:
        state = read_checkpoint(path)
        if "arch_optimizer" not in state:
            raise UsageError(f"{path}: a training checkpoint, not a search's; drop --resume or pick the search run")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history, self.start_epoch, self.search_s = state["history"], state["epoch"], state["search_s"]
        self.probs_history = [np.array(p) for p in state["probs_history"]]
        restore_rng_state(state["rng"])
        stderr.print(f"resuming {path} after epoch {self.start_epoch}")

    # --- steps -------------------------------------------------------------------------------------------------
    def train_mode(self) -> None:
        """Training mode, but with ``batch_norm: frozen`` every backbone BatchNorm normalises with the statistics
        it inherited (eval mode); their scale and shift still train."""
        self.model.train()
        if self.config.batch_norm == "frozen":
            for module in self.model.backbone.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.eval()

    def _check(self, value: torch.Tensor, what: str, epoch: int) -> None:
        if not torch.isfinite(value):
            raise EdgedetError(f"the {what} became {value.item()} at epoch {epoch + 1}: lower --lr, or check the "
                               "data with `edgedet data stats`")

    def weight_step(self, batch: tuple[torch.Tensor, list[dict[str, Any]]], epoch: int) -> float:
        images, targets = to_device(*batch, self.device)
        with frozen(self.model.arch_parameters()):
            loss = sum(self.model(images, targets).values())
        self._check(loss, "detection loss", epoch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.weights, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return loss.item()

    def _theta_losses(self, batch: tuple[torch.Tensor, list[dict[str, Any]]], path: str, size: int
                      ) -> Iterator[tuple[torch.Tensor, float]]:
        """(detection loss, share of the batch) per ``size``-image piece of a batch on ``path``, weights frozen:
        each backpropagated times its share adds up to the batch's gradient on θ alone, at one piece's memory."""
        images, targets = to_device(*batch, self.device)
        with frozen(self.weights), self.model.backbone.path(path):
            for piece, piece_targets, share in chunks(images, targets, size):
                yield sum(self.model(piece, piece_targets).values()), share

    def theta_step(self, batch: tuple[torch.Tensor, list[dict[str, Any]]], epoch: int) -> dict[str, float]:
        """One Adam step on θ; in hybrid mode the batch's gradient is accumulated over chunks (memory)."""
        size = THETA_CHUNK if self.mode == "hybrid" else len(batch[0])
        self.arch_optimizer.zero_grad(set_to_none=True)
        parts, shares = [], []
        for det_loss, share in self._theta_losses(batch, self.theta_path, size):
            loss, details = self.latency(det_loss, self.model.backbone.probs())
            self._check(loss, "search loss", epoch)
            (loss * share).backward()
            parts.append(details)
            shares.append(share)
        self.arch_optimizer.step()
        return {key: float(np.average([d[key] for d in parts], weights=shares)) for key in parts[0]}

    def detection_theta_gradients(self, path: str, repeats: int = 2) -> torch.Tensor:
        """(batches, allowed θ entries): the detection loss's gradient on θ for every batch of the θ loader, run
        ``repeats`` times (each pass seeded for its own augmentation) on ``path`` at the current temperature. How
        far they agree across batches is how much signal each θ step carries; nothing is updated."""
        backbone = self.model.backbone
        self.train_mode()  # θ's gradient flows through the Gumbel draws of training mode only
        grads = []
        for repeat in range(repeats):
            self.theta_loader.generator.manual_seed(repeat)
            for batch in self.theta_loader:
                backbone.theta.grad = None
                for det_loss, share in self._theta_losses(batch, path, THETA_CHUNK):
                    (det_loss * share).backward()
                grads.append(backbone.theta.grad[backbone.mask].cpu())
        backbone.theta.grad = None
        return torch.stack(grads)

    def run_epoch(self, epoch: int, bar: Progress, task: TaskID) -> dict[str, Any]:
        """One epoch; θ steps (after the warm-up) interleaved evenly among the weight steps."""
        config = self.config
        self.train_mode()
        self.model.temperature = temperature(epoch, config.epochs, config.initial_temperature,
                                             config.temperature_decay)
        search = epoch >= config.warmup_epochs
        self.weight_loader.generator.manual_seed(config.seed + epoch)  # same order and augmentation on resume
        self.theta_loader.generator.manual_seed(config.seed + epoch + 100_003)
        theta_batches = iter(self.theta_loader) if search else iter(())
        theta_total = len(self.theta_loader) if search else 0
        weight_losses: list[float] = []
        details: list[dict[str, float]] = []
        start, seen = time.perf_counter(), 0
        for step, batch in enumerate(self.weight_loader):
            weight_losses.append(self.weight_step(batch, epoch))
            seen += len(batch[0])
            bar.advance(task)
            while len(details) < (step + 1) * theta_total // len(self.weight_loader):
                theta_batch = next(theta_batches)
                details.append(self.theta_step(theta_batch, epoch))
                seen += len(theta_batch[0])
                bar.advance(task)
            status = f"det {np.mean(weight_losses):.3f}"
            if details:
                status += f" loss {details[-1]['loss']:.3f} " + " ".join(
                    f"{d.name} {details[-1][f'ms_{d.name}']:.2f} ms" for d in self.devices)
            bar.update(task, status=f"{status} τ {self.model.temperature:.2f}")
        elapsed = time.perf_counter() - start
        probs = self.model.backbone.probs().detach()
        row: dict[str, Any] = {"epoch": epoch + 1, "phase": "search" if search else "warmup",
                               "temperature": self.model.temperature, "lr": self.optimizer.param_groups[0]["lr"]}
        row |= {key: float(np.mean([d[key] for d in details])) for key in details[0]} if details else {}
        row |= {"loss_det_w": float(np.mean(weight_losses)), "entropy": mean_entropy(probs),
                "images_per_s": seen / elapsed, "epoch_s": elapsed}
        row |= {f"ms_{d.name}": ms for d, ms in zip(self.devices, self.latency.expected_ms(probs).tolist())}
        return row

    # --- loop --------------------------------------------------------------------------------------------------
    def log_keys(self) -> list[str]:
        return ["epoch", "phase", "temperature", "lr", "loss", "loss_det", "lat_factor", "target_factor", "lat_norm",
                "loss_det_w", *(f"ms_{d.name}" for d in self.devices), "entropy", "images_per_s", "epoch_s"]

    def fit(self) -> SearchResult:
        """Run to ``config.epochs``, then derive and write the architecture. Ctrl-C keeps the last finished epoch's
        ``last.pt`` (saved as each epoch ends) and re-raises."""
        config = self.config
        atomic_write_json(self.run_dir / "config.json", asdict(config) | {"imgsz": self.imgsz})
        per_epoch = [len(self.weight_loader) + (len(self.theta_loader) if e >= config.warmup_epochs else 0)
                     for e in range(self.start_epoch, config.epochs)]
        epoch = self.start_epoch
        with step_progress(disable=False) as bar:
            task = bar.add_task(f"search ({self.mode} path)", total=sum(per_epoch), status="")
            try:
                for epoch in range(self.start_epoch, config.epochs):
                    bar.update(task, description=f"search ({self.mode}) epoch {epoch + 1}/{config.epochs}")
                    row = self.run_epoch(epoch, bar, task)
                    self.search_s += row["epoch_s"]
                    self.history.append(row)
                    self.probs_history.append(self._probs())
                    write_log_csv(self.run_dir / "log.csv", self.history, self.log_keys())
                    save_checkpoint(self.run_dir / "last.pt", self.state(epoch + 1))
                    shown = "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
                    stderr.print(shown, highlight=False)
            except KeyboardInterrupt:
                stderr.print(interrupted_message(self.run_dir / "last.pt", epoch))
                raise
        return self.finish()

    def finish(self) -> SearchResult:
        """Derive the architecture (budgeted when there are targets; with the pretrained prior when the candidates
        inherit Lite0's weights, θ's departures from it verified by the supernet; at the best of several input sizes
        when given) and write arch.json and probs.png."""
        scores, choice = self._derivation_scores(self.model.log_probs()), {}
        if len(self.input_sizes) > 1 or self._verifies():
            arch, choice = self._choose(scores)
        else:
            size = self.input_sizes[0]
            arch = to_arch(self.space, size, derive_ops(scores, self._devices_at(size),
                                                        budget_use=self.config.budget_use))
        ops = [OP_NAMES.index(op) for op in arch.ops]
        rows = [{"device": d.name, "precision": d.precision, "predicted_ms": round(d.predict_ms(ops), 4),
                 "target_ms": d.target_ms, "reference_ms": round(d.reference_ms, 4),
                 "fastest_ms": round(d.fastest_ms, 4)} for d in self._devices_at(arch.imgsz)]
        now = datetime.datetime.now(datetime.timezone.utc)
        provenance = {
            "source": "edgedet search", "date": now.isoformat(timespec="seconds"), "version": __version__,
            "devices": rows, "objective": self.config.objective, "mode": self.mode,
            "epochs_done": len(self.history), "search_s": round(self.search_s, 1), "argmax": str(self.model.export()),
            "theta_probs": self.model.export_probs(),
            "departure_costs": None if self.departure_costs is None else self.model.per_layer(self.departure_costs),
            "config": asdict(self.config) | {"imgsz": self.imgsz}, **choice,
        }
        arch = replace(arch, provenance=provenance)
        path = atomic_write_json(self.run_dir / "arch.json", arch.to_json())
        plot_probs(self.probs_history, self.run_dir / "probs.png",
                   title=f"{self.space.name}@{self.imgsz} for {', '.join(self.config.devices)}: choice probabilities")
        return SearchResult(arch, path, rows)

    def _derivation_scores(self, log_probs: np.ndarray) -> np.ndarray:
        """What the derivation maximises: log-probabilities less the departure-cost prior where there is one."""
        if self.departure_costs is None:
            return log_probs
        return departure_scores(log_probs, self.departure_costs, self.config.reference_prior)

    def _devices_at(self, imgsz: int) -> list[DeviceLatency]:
        """The devices' latency tables and targets at ``imgsz`` (loaded once per size)."""
        if imgsz not in self._devices_by_size:
            self._devices_by_size[imgsz] = load_devices(self.config, self.space, imgsz)
        return self._devices_by_size[imgsz]

    def _derive(self, scores: np.ndarray, imgsz: int) -> ArchSpec | None:
        """The budgeted derivation at ``imgsz``; None where no architecture at that size meets the targets."""
        try:
            ops = derive_ops(scores, self._devices_at(imgsz), budget_use=self.config.budget_use)
        except UsageError:
            return None
        return to_arch(self.space, imgsz, ops)

    def _verifies(self) -> bool:
        """Whether θ's departures from the prior-only derivation must be verified (there is a prior to verify)."""
        return self.departure_costs is not None and self.config.verify_departures

    def _choose(self, scores: np.ndarray) -> tuple[ArchSpec, dict[str, Any]]:
        """The derivation chosen by the supernet's score (its AP with the path fixed and BatchNorm recalibrated, on
        all of θ's held-apart images and on ``SCORE_FOLDS`` folds of them: ``edgedet.search.ranking``), where two
        derivations' scores differ by tenths, about their noise:

        - the input size (FBNetV2's other axis, chosen after the search; a smaller input leaves more of the budget
          to the blocks): the reference's size (where Lite0 itself comes nearest the targets) unless another size's
          derivation beats it beyond the noise (``evidenced_size``); the prior-only derivation (θ ignored) chooses
          its size the same way, so that baseline still says what θ added;
        - with the prior (``verify_departures``): θ's derivation only where it beats the prior-only one by more than
          two standard errors of their paired fold gap, else the prior-only one (θ's few noisy steps can favour a
          cheap op the supernet does not score higher).

        Derivations scored before by this training are not scored again (``_earlier_scores``). Returns the
        architecture and, for the provenance, every size's derivations and scores, the reference's size, the
        prior-only pick and θ's pick with its gap to the prior's."""
        from edgedet.search.ranking import SearchedSupernet

        supernet = SearchedSupernet.of(self, max_images=None)
        tables = {"searched": scores}
        if self.departure_costs is not None:
            tables["prior_only"] = self._derivation_scores(self.uniform)
        derived = {(name, size): self._derive(table, size) for name, table in tables.items()
                   for size in self.input_sizes}
        unique = {str(arch): arch for arch in derived.values() if arch is not None}
        scored = self._earlier_scores()
        scored |= {text: supernet.scores(unique[text], "recalibrated", SCORE_FOLDS)
                   for text in progress_track([text for text in unique if text not in scored], "scoring derivations")}
        sizes: dict[str, dict[str, Any]] = {str(size): {} for size in self.input_sizes}  # {} where none fits
        for (name, size), arch in derived.items():
            if arch is not None:
                ap, folds = scored[str(arch)]
                sizes[str(size)] |= {name: str(arch), f"{name}_AP": ap, f"{name}_fold_AP": folds}
        reference = self._reference_size()
        best = {name: derived[name, evidenced_size({size: scored[str(derived[name, size])] for size in
                                                    self.input_sizes if derived[name, size] is not None}, reference)]
                for name in tables}
        choice = {"input_sizes": sizes, "reference_size": reference} | (
            {"prior_only": str(best["prior_only"])} if "prior_only" in best else {})
        chosen, verdict = best["searched"], ""
        if self._verifies():
            gap = fold_gap(scored[str(chosen)][1], scored[str(best["prior_only"])][1])
            choice |= {"theta_derivation": str(chosen), "theta_vs_prior_only": gap}
            verdict = (f"; θ's derivation {gap['gap']:+.2f} ± {gap['gap_se'] or 0:.2f} over the prior-only one: "
                       + ("kept" if gap["beats"] else "within the noise, the prior-only one kept"))
            chosen = chosen if gap["beats"] else best["prior_only"]
        stderr.print("supernet AP (recalibrated) of θ's derivation by input size: " + "  ".join(
            f"{size} {row.get('searched_AP', float('nan')):.2f}" for size, row in sizes.items())
            + (f"; the reference's size {reference}" if reference else "") + f"; chosen {chosen.imgsz}{verdict}",
            highlight=False)
        return chosen, choice

    def _earlier_scores(self) -> dict[str, tuple[float, list[float]]]:
        """The derivations this supernet, as it stands, has scored already: a finished search derived again (other
        input sizes, the verification) scores only what is new. Read from the arch.json of the same training
        (same epochs and search time), else none."""
        path = self.run_dir / "arch.json"
        provenance = ArchSpec.load(path).provenance if path.is_file() else {}
        if (provenance.get("epochs_done"), provenance.get("search_s")) != (len(self.history), round(self.search_s, 1)):
            return {}
        return {row[name]: (row[f"{name}_AP"], row[f"{name}_fold_AP"]) for row in
                provenance.get("input_sizes", {}).values() for name in ("searched", "prior_only") if name in row}

    def _reference_size(self) -> int | None:
        """The input size at which the space's reference architecture (Lite0) comes nearest every target: Lite0
        scaled by input size, the hand-designed way to a latency. None without targets."""

        def miss(size: int) -> float:
            return max(abs(d.reference_ms / d.target_ms - 1) for d in self._devices_at(size) if d.target_ms)

        return min(self.input_sizes, key=miss) if any(d.target_ms for d in self.devices) else None


def evidenced_size(scored: dict[int, tuple[float, list[float]]], home: int | None) -> int:
    """Of sizes scored (AP, fold APs), the best-scored one where it beats ``home``'s fold APs by more than two
    standard errors of the paired gap (``edgedet.stats.fold_gap``), else ``home``; without a home (or nothing
    scored there), the best."""
    best = max(scored, key=lambda size: scored[size][0])
    if home not in scored or best == home:
        return best
    return best if fold_gap(scored[best][1], scored[home][1])["beats"] else home


def arch_lr(config: SearchConfig) -> float:
    """θ's learning rate: the paper's 0.01 over 90 epochs, scaled up for short runs as the temperature decay is, so
    that θ can move as far in E epochs (at 0.01 an 8-epoch CPU search barely leaves the uniform distribution)."""
    return config.arch_lr if config.arch_lr is not None else 0.01 * 90 / config.epochs


def search(config: SearchConfig, run_dir: Path, *, resume: bool = False) -> SearchResult:
    """Search (or resume) into ``run_dir``; returns the derived architecture and its predicted latencies."""
    searcher = Searcher(config, run_dir)
    if resume:
        searcher.resume(resume_path(run_dir))
    return searcher.fit()

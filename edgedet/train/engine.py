"""The training engine: AdamW/SGD with warm-up + cosine, EMA weights, gradient clipping, per-epoch atomic
checkpoints that Ctrl-C leaves intact, exact ``--resume``, best checkpoint by val AP, CSV (and TensorBoard) logs.

Data: one dataset or several (``data`` is a list; classes matched by name, see ``UnionDetection``), in any layout
``edgedet.data.formats`` reads. During training the EMA model is evaluated on the first ``max_eval_images`` of the
first dataset's val (a fixed subset, cheap enough to run every epoch); at the end on every dataset's whole val,
each reported apart (``final_eval.json``).

Online dense distillation (``distill``: a teacher such as YOLOX-Nano scores every anchor point of each augmented
batch; ``edgedet.train.distill``) adds ``loss_distill`` beside the labels' losses.

Time budget (``time``, e.g. ``90m``): every ``PLAN_EVERY`` steps the run re-plans the step where the time runs out
at the measured step time (less the evaluations still to come) and moves the cosine's end there, so it anneals on
time even when one epoch of a large set outlasts the budget (the last epoch may be partial); ``epochs`` only sizes
the schedule of the first ``PLAN_EVERY`` steps. (Planning whole epochs, as ultralytics' ``time=`` does, left a
45-minute epoch under an 80-minute budget at its peak learning rate: one epoch fitted, the cosine never began.)

Run folder (``runs/train/<name>/``): ``config.json`` (resolved settings), ``last.pt``, ``best.pt``, ``log.csv``,
``final_eval.json``.
Several processes (GPUs, or CPU processes with gloo): launch with ``torchrun --nproc_per_node N -m edgedet train
...``. The model is wrapped in DistributedDataParallel and the data sharded; each rank draws its own augmentation;
the loss normalisers and the logged numbers are shared over the ranks, so N ranks of batch B train as one process
of batch N*B; rank 0 alone evaluates and writes, the others waiting for it (``edgedet.train.distributed``).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DistributedSampler

from edgedet import __version__
from edgedet.data.annotations import find_split
from edgedet.data.coco import training_set
from edgedet.data.formats import available_splits
from edgedet.data.transforms import train_transforms
from edgedet.detect.model import Detector, build_detector
from edgedet.detect.predict import TorchPredictor
from edgedet.errors import EdgedetError, UsageError
from edgedet.evaluate.images import evaluate_predictor
from edgedet.io import atomic_write_json
from edgedet.progress import stderr
from edgedet.settings import parse_duration
from edgedet.train.checkpoint import read_checkpoint, save_checkpoint
from edgedet.train.common import (WarmupCosine, ema_avg_fn, interrupted_message, make_loader, param_groups,
                                  restore_rng_state, resume_path, rng_state, seed_everything, select_device,
                                  step_progress, to_device, write_log_csv)
from edgedet.train.config import TrainConfig
from edgedet.train.distributed import any_rank, finish, from_rank0, init_distributed, sum_over_ranks, world_size

PLAN_EVERY = 20  # steps between re-plans of a time budget: the step time settles within a few steps


@dataclass
class Trainer:
    config: TrainConfig
    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    best_ap: float = -1.0
    start_epoch: int = 0

    def __post_init__(self) -> None:
        self.distributed = world_size() > 1
        self.rank = init_distributed() if self.distributed else 0
        self.device = select_device(self.config.device)
        seed_everything(self.config.seed)
        self.arch = self.config.trained_arch()
        roots = [Path(d) for d in self.config.data]
        self.train_set = training_set(roots, self.config.classes, train_transforms(self.arch.imgsz),
                                      self.config.data_repeats)
        self.val_splits = val_splits(roots)
        pretrained = self.config.pretrained and self.arch.space == "lite0" and self.arch.width_mult == 1.0
        self.model = build_detector(self.arch, len(self.train_set.class_names), head=self.config.head,
                                    neck_channels=self.config.neck_channels, pretrained=pretrained)
        if self.config.init_from:
            from edgedet.search.supernet import inherit_from_search

            inherit_from_search(self.model, self.arch, self.train_set.class_names, Path(self.config.init_from))
        # channels-last runs the depthwise convs ~25% faster on CPU (measured here), and suits CUDA AMP too
        self.model.to(self.device, memory_format=torch.channels_last)
        if self.config.sync_bn and self.distributed:
            if self.device.type != "cuda":
                raise UsageError("sync_bn: PyTorch's SyncBatchNorm runs on GPUs only; on CPUs each rank keeps its "
                                 "own BatchNorm statistics (drop --set sync_bn=true)")
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.ema = AveragedModel(self.model, avg_fn=ema_avg_fn(self.config.ema_decay), use_buffers=True)
        groups = param_groups(self.model.parameters(), self.config.weight_decay)
        if self.config.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(groups, lr=self.config.lr)
        else:
            self.optimizer = torch.optim.SGD(groups, lr=self.config.lr, momentum=0.9, nesterov=True)
        self.sampler = DistributedSampler(self.train_set, seed=self.config.seed) if self.distributed else None
        self.loader = make_loader(self.train_set, batch=self.config.batch, workers=self.config.workers,
                                  sampler=self.sampler)
        steps = len(self.loader)
        self.schedule = WarmupCosine(int(self.config.warmup_epochs * steps), self.config.epochs * steps,
                                     self.config.min_lr_ratio)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.schedule)
        self.budget_s = parse_duration(self.config.time) if self.config.time else None
        self.net = (torch.nn.parallel.DistributedDataParallel(self.model) if self.distributed else self.model)
        self.teacher = None
        if self.config.distill:
            from edgedet.runtime.session import choose_providers
            from edgedet.train.distill import DenseTeacher

            providers = choose_providers("auto")[1] if self.device.type == "cuda" else None  # the GPU's, if any
            self.teacher = DenseTeacher(self.config.distill, self.train_set.class_names, self.arch.imgsz,
                                        scale=self.config.distill_scale, threads=torch.get_num_threads(),
                                        providers=providers)

    # --- state -------------------------------------------------------------------------------------------------
    def state(self, epoch: int) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(), "ema": self.ema.module.state_dict(),
            "ema_updates": int(self.ema.n_averaged), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "epoch": epoch, "arch": self.arch.to_json(),
            "config": asdict(self.config), "class_names": self.train_set.class_names,
            "category_ids": self.train_set.category_ids, "history": self.history, "best_ap": self.best_ap,
            "rng": rng_state(),
            "version": __version__,
        }

    def resume(self, path: Path) -> None:
        state = read_checkpoint(path)
        self.model.load_state_dict(state["model"])
        self.ema.module.load_state_dict(state["ema"])
        self.ema.n_averaged.fill_(state["ema_updates"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history, self.best_ap, self.start_epoch = state["history"], state["best_ap"], state["epoch"]
        restore_rng_state(state["rng"])
        stderr.print(f"resuming {path} after epoch {self.start_epoch}")

    # --- loop --------------------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.net.train()
        if isinstance(self.model, Detector):  # edgedet's head: prior-box or task-aligned assignment
            limit = self.config.static_assign_epochs
            self.model.loss.static = limit is None or epoch < limit
            self.model.loss.box_weighting = self.config.box_weighting
            self.model.loss.distill_weight = self.config.distill_weight
        self.loader.generator.manual_seed(self.config.seed + epoch)  # same order and augmentation on resume
        if self.sampler:
            self.sampler.set_epoch(epoch)
            self.loader.generator.manual_seed(self.config.seed + epoch + 7919 * self.rank)
            seed_everything(self.config.seed + epoch + 7919 * self.rank)  # each rank its own augmentation
        totals: dict[str, float] = {}
        seen, start = 0, time.perf_counter()
        time_left = self.budget_s - self.spent_s() if self.budget_s else math.inf
        with step_progress(disable=bool(self.rank)) as bar:
            task = bar.add_task(f"epoch {epoch + 1}/{self.planned_epochs()}", total=len(self.loader), status="")
            for step, (images, targets) in enumerate(self.loader):
                if self.budget_s is not None:
                    elapsed = time.perf_counter() - start
                    if step and step % PLAN_EVERY == 0:
                        self.replan(time_left - elapsed, elapsed / step)
                    if self._out_of_budget(elapsed > time_left):
                        break
                if self.teacher:
                    targets = self.teacher.annotate(images, targets)
                images, targets = to_device(images, targets, self.device)
                losses = self.net(images, targets)
                loss = sum(losses.values())
                if not torch.isfinite(loss):
                    raise EdgedetError(f"loss became {loss.item()} at epoch {epoch + 1}: lower --lr or check the data")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                self.ema.update_parameters(self.model)
                seen += len(images)
                for key, value in losses.items():
                    totals[key] = totals.get(key, 0.0) + value.item() * len(images)
                rate = seen / (time.perf_counter() - start)
                bar.update(task, advance=1, status=" ".join(f"{k[5:]} {v / seen:.3f}" for k, v in totals.items())
                           + f" {rate:.1f} img/s")
        elapsed = time.perf_counter() - start
        if self.distributed:  # the epoch's images and losses over every rank
            totals = sum_over_ranks(totals | {"seen": seen})
            seen = int(totals.pop("seen"))
        return {**{k: v / max(seen, 1) for k, v in totals.items()}, "images_per_s": seen / elapsed,
                "epoch_s": elapsed, "lr": self.optimizer.param_groups[0]["lr"]}

    def evaluate(self, annotations: Path, images: Path, max_images: int | None) -> dict[str, float]:
        """The EMA model's AP on a val split (its first ``max_images``), for the classes that split annotates."""
        start = time.perf_counter()
        report, _ = evaluate_predictor(TorchPredictor(self.ema.module), annotations, images,
                                       self.train_set.class_names, max_images=max_images)
        self.ema.module.train()
        return {"AP": report.metrics["AP"], "AP50": report.metrics["AP50"], "eval_s": time.perf_counter() - start}

    def final_evaluation(self) -> dict[str, float]:
        """Every dataset's whole val, each apart; ``AP``/``AP50`` are the first dataset's."""
        results = {name: self.evaluate(*split, None) for name, split in self.val_splits.items()}
        atomic_write_json(self.run_dir / "final_eval.json", results)
        first = next(iter(results.values()))
        flat = {f"{name}.{k}": v for name, r in results.items() for k, v in r.items() if k != "eval_s"}
        return {"AP": first["AP"], "AP50": first["AP50"], **flat}

    def spent_s(self, rows: list[dict[str, Any]] | None = None) -> float:
        """Seconds of training and evaluation in ``rows`` (default: the run's history), resumed runs included."""
        return sum(row["epoch_s"] + row.get("eval_s", 0.0) for row in (self.history if rows is None else rows))

    def planned_epochs(self) -> int:
        """``epochs``, or under a time budget the epochs the schedule's planned steps take (the last may be
        partial)."""
        if self.budget_s is None:
            return self.config.epochs
        return max(1, math.ceil(self.schedule.total_steps / len(self.loader)))

    def replan(self, time_left_s: float, per_step_s: float) -> None:
        """Under a time budget: the cosine's end moved to the step where the time runs out at the measured step time,
        less the evaluations still to come on the way (the one after the run is outside the budget). Re-planned
        every ``PLAN_EVERY`` steps, so it ends on time even when one epoch is longer than the whole budget."""
        evals = [row["eval_s"] for row in self.history if "eval_s" in row]
        epochs_left = time_left_s / (per_step_s * len(self.loader))
        reserve = (evals[-1] if evals else 0.0) * max(1, math.ceil(epochs_left / self.config.eval_every))
        total = self.scheduler.last_epoch + max(0, int((time_left_s - reserve) / per_step_s))
        self.schedule.total_steps = from_rank0(total) if self.distributed else total  # one plan on every rank

    def _out_of_budget(self, out_of_time: bool) -> bool:
        """Whether to stop now: the planned steps are done, or the time ran out first (then the plan ends here);
        under torchrun every rank stops at the same step."""
        stop = out_of_time or self.scheduler.last_epoch >= self.schedule.total_steps
        if self.distributed:
            stop = any_rank(stop)
        if stop:
            self.schedule.total_steps = self.scheduler.last_epoch
        return stop

    def log(self, row: dict[str, Any]) -> None:
        losses = ["loss_cls", "loss_box"] + (["loss_distill"] if self.config.distill else [])
        keys = ["epoch", *losses, "lr", "images_per_s", "epoch_s", "eval_s", "AP", "AP50"]
        write_log_csv(self.run_dir / "log.csv", self.history, keys)
        if self.writer:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, float):
                    self.writer.add_scalar(key, value, row["epoch"])

    def fit(self) -> dict[str, Any]:
        """Train to ``config.epochs``; returns the final metrics. Ctrl-C keeps the last finished epoch's ``last.pt``
        (saved as each epoch ends) and re-raises."""
        self.writer = None
        if self.rank == 0:
            atomic_write_json(self.run_dir / "config.json", asdict(self.config) | {"arch": str(self.arch)})
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.run_dir / "tb"))
            except ImportError:
                pass
        epoch = self.start_epoch
        first_val = next(iter(self.val_splits.values()))
        try:
            while epoch < self.planned_epochs() and not (self.budget_s and self.spent_s() >= self.budget_s):
                row = {"epoch": epoch + 1, **self.train_epoch(epoch)}
                last = epoch + 1 >= self.planned_epochs()
                if self.rank == 0 and (last or (epoch + 1) % self.config.eval_every == 0):
                    row |= self.evaluate(*first_val, self.config.max_eval_images)
                    if row["AP"] > self.best_ap:
                        self.best_ap = row["AP"]
                        save_checkpoint(self.run_dir / "best.pt", self.state(epoch + 1))
                if self.distributed:  # the others wait here while rank 0 evaluates; then all share its row (and plan)
                    row = from_rank0(row)
                self.history.append(row)
                if self.rank == 0:
                    self.log(row)
                    save_checkpoint(self.run_dir / "last.pt", self.state(epoch + 1))
                    shown = "  ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
                    stderr.print(shown, highlight=False)
                epoch += 1
            final = (self.history[-1] if self.history else {}) | {"epochs": len(self.history)}
            if self.rank == 0:
                final |= self.final_evaluation()
            if self.distributed:
                from_rank0(None)  # the others wait here for rank 0's final evaluation
            return final
        except KeyboardInterrupt:
            if self.rank == 0:
                stderr.print(interrupted_message(self.run_dir / "last.pt", epoch))
            raise
        finally:
            if self.distributed:
                finish()


def val_splits(roots: list[Path]) -> dict[str, tuple[Path, Path]]:
    """Each dataset's val split by a short unique name (teacher-labelled sets often have none: they only teach)."""
    splits: dict[str, tuple[Path, Path]] = {}
    for root in roots:
        if any(split.startswith("val") for split in available_splits(root)):
            key = root.name if root.name not in splits else f"{root.parent.name}/{root.name}"
            splits[key] = find_split(root, "val")
    if not splits:
        raise UsageError(f"none of {', '.join(map(str, roots))} has a val split to evaluate on: add one")
    return splits


def train(config: TrainConfig, run_dir: Path, *, resume: bool = False) -> dict[str, Any]:
    """Train (or resume) into ``run_dir``; returns the last epoch's metrics."""
    trainer = Trainer(config, run_dir)
    if resume:
        trainer.resume(resume_path(run_dir))
    return trainer.fit()

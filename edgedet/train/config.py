"""A training run's settings: the one place their defaults live (the CLI shows them), checked on the way in,
saved with the run. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgedet.detect import BOX_WEIGHTINGS, HEADS
from edgedet.errors import UsageError
from edgedet.settings import check_settings, parse_duration
from edgedet.space.archspec import ArchSpec


@dataclass
class TrainConfig:
    """Every setting of a training run; saved with the run, so any result can be traced and resumed."""

    arch: str = "lite0@320"  # ArchSpec string or arch.json path
    data: list[str] = field(default_factory=list)  # dataset folders (COCO, YOLO or VOC); several train on the union
    data_repeats: list[int] | None = None  # times each --data folder is listed per epoch, in order, e.g. [16, 1]
    classes: list[str] | None = None  # category subset, e.g. ["person"]; None = all
    imgsz: int | None = None  # overrides the ArchSpec's input size
    epochs: int = 30
    time: str | None = None  # time budget, e.g. "90m", "1.5h": re-plans the epochs to end the cosine on time
    batch: int = 16
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    static_assign_epochs: int | None = None  # prior-box matching for N epochs, then task-aligned; None: throughout
    box_weighting: str = "iou"  # each positive's box loss weight: iou (its own box's), score (GFL) or uniform
    min_lr_ratio: float = 0.05  # cosine ends at lr * this
    ema_decay: float = 0.998
    grad_clip: float = 10.0
    pretrained: bool = True  # ImageNet Lite0 weights where the space allows
    init_from: str | None = None  # a search run (runs/search/NAME): start from its supernet's weights on this path
    distill: str | None = None  # a teacher (PATH.onnx[:ADAPTER]) scoring every point of each batch, online
    distill_weight: float = 1.0  # of the dense distillation loss beside the labels' losses
    distill_scale: int = 1  # the teacher sees each batch at this multiple of imgsz (2: YOLOX-Nano at 640 for 320)
    neck_channels: int = 96
    head: str = "edgedet"  # edgedet | ssdlite (torchvision's SSDlite head and loss: a baseline)
    workers: int = 2
    seed: int = 0
    eval_every: int = 5  # epochs; the last epoch is always evaluated
    max_eval_images: int | None = 500  # val images evaluated during training; the whole val at the end
    device: str = "auto"  # auto | cpu | cuda
    sync_bn: bool = False  # torchrun on GPUs: BatchNorm statistics over every rank's batch (SyncBatchNorm)

    def trained_arch(self) -> ArchSpec:
        """The ArchSpec at the input size this run trains at (``imgsz`` when set, else the ArchSpec's own)."""
        arch = ArchSpec.load(self.arch)
        return arch.with_imgsz(self.imgsz) if self.imgsz else arch

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Unknown keys fail with the closest known one (a typo must not silently change nothing)."""
        if isinstance(values.get("data"), str):  # one folder, as older runs saved it
            values = values | {"data": [values["data"]]}
        check_settings(cls, values, "training")
        config = cls(**values)
        if not config.data:
            raise UsageError("no training data: give --data DIR (repeat it to train on several datasets)")
        if config.time is not None:
            parse_duration(config.time)
        repeats = config.data_repeats
        if repeats is not None and (len(repeats) != len(config.data) or any(times < 1 for times in repeats)):
            raise UsageError(f"data_repeats {repeats}: give one whole number >= 1 per --data folder "
                             f"({len(config.data)} here), in the same order")
        if config.optimizer not in ("adamw", "sgd"):
            raise UsageError(f"optimizer '{config.optimizer}': use adamw or sgd")
        if config.epochs < 1 or config.batch < 1:
            raise UsageError("epochs and batch must be at least 1")
        if config.head not in HEADS:
            raise UsageError(f"head '{config.head}': use one of {', '.join(HEADS)}")
        if config.distill_weight < 0:
            raise UsageError(f"distill_weight {config.distill_weight}: give a weight >= 0")
        if config.distill_scale < 1:
            raise UsageError(f"distill_scale {config.distill_scale}: give a whole number >= 1 (the teacher's input "
                             "size over the student's)")
        if config.distill and config.head != "edgedet":
            raise UsageError(f"distill: dense distillation teaches edgedet's head, not '{config.head}'")
        if config.box_weighting not in BOX_WEIGHTINGS:
            raise UsageError(f"box_weighting '{config.box_weighting}': use one of {', '.join(BOX_WEIGHTINGS)}")
        return config

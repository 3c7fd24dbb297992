"""A search's settings: the one place their defaults live (the CLI shows them), checked on the way in, saved with
the run. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgedet.errors import UsageError
from edgedet.settings import check_settings

OBJECTIVES = ("mean", "max")  # over devices, of each latency relative to the space's reference architecture
MODES = ("single", "mixture")  # the supernet's paths: one sampled op per sample, or all ops weighted
SEARCH_MODES = ("auto", *MODES, "hybrid")  # hybrid: weights on the single path, θ on the mixture
# single path: what each candidate's BatchNorm normalises with. sub_batch: the samples that drew it (about B/9);
# frozen: the inherited ImageNet statistics (its scale and shift still train); per_batch: one architecture per
# batch, so every BatchNorm sees whole batches (and θ's gradient one draw per batch)
BATCH_NORMS = ("sub_batch", "frozen", "per_batch")


@dataclass
class SearchConfig:
    """Every setting of a search; saved with the run."""

    devices: list[str] = field(default_factory=lambda: ["jetson"])  # profile ids or aliases
    precision: str | None = None  # None: each profile's own
    objective: str = "mean"  # mean | max over devices of latency / reference latency
    target_ms: list[float] = field(default_factory=list)  # none, one for every device, or one per device
    budget_use: float = 0.95  # the derived backbone spends at least this share of each target (where it can)
    space: str = "lite0"
    imgsz: int | None = None  # None: the space's default
    input_sizes: list[int] = field(default_factory=list)  # sizes the derivation chooses among (none: imgsz alone)
    epochs: int = 8
    warmup_epochs: int = 2
    data: list[str] = field(default_factory=list)  # dataset folders; several search on their union (θ on 20% of it)
    classes: list[str] | None = None
    mode: str = "auto"  # auto (single on CPU, mixture on CUDA) | single | mixture | hybrid
    batch: int = 16
    seed: int = 0
    lr: float = 0.02  # weights: SGD momentum 0.9, warm-up + cosine
    weight_decay: float = 1e-4
    lr_warmup_epochs: float = 0.5
    arch_lr: float | None = None  # θ: Adam; None = the paper's 0.01 stretched like the temperature, 0.01·90/E
    arch_weight_decay: float = 5e-4
    alpha: float = 0.2
    beta: float = 0.6
    target_weight: float = 10.0  # λ of the target factor
    initial_temperature: float = 5.0
    temperature_decay: float = 0.045  # per epoch over the paper's 90 epochs
    theta_fraction: float = 0.2  # share of the training images that train θ
    batch_norm: str = "sub_batch"  # sub_batch | frozen | per_batch (see BATCH_NORMS)
    grad_clip: float = 10.0
    pretrained: bool = True  # ImageNet Lite0 weights for every candidate (lite0 space)
    reference_prior: float = 50.0  # with pretrained weights: nats per unit of departure cost, when deriving
    verify_departures: bool = True  # with that prior: θ's derivation replaces the prior's only where the supernet
    # scores it higher beyond two standard errors (folds of θ's held-apart images); else the prior-only derivation
    neck_channels: int = 96
    workers: int = 2
    device: str = "auto"  # auto | cpu | cuda

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SearchConfig":
        if isinstance(values.get("data"), str):  # one folder, as older runs saved it
            values = values | {"data": [values["data"]] if values["data"] else []}
        check_settings(cls, values, "search")
        config = cls(**values)
        if config.epochs < 1 or config.batch < 1:
            raise UsageError("--epochs and --batch must be at least 1")
        if not 0 <= config.warmup_epochs < config.epochs:
            raise UsageError(f"--warmup-epochs {config.warmup_epochs} must be below --epochs {config.epochs}: "
                             "θ trains only after the warm-up")
        if config.objective not in OBJECTIVES:
            raise UsageError(f"--objective {config.objective}: use mean (average device) or max (worst device)")
        if config.batch_norm not in BATCH_NORMS:
            raise UsageError(f"batch_norm '{config.batch_norm}': use one of {', '.join(BATCH_NORMS)}")
        if config.mode not in SEARCH_MODES:
            raise UsageError(f"--mode {config.mode}: use auto, single, mixture or hybrid")
        if not config.devices:
            raise UsageError("give at least one --device")
        if len(set(config.devices)) < len(config.devices):
            raise UsageError(f"--device given twice: {', '.join(config.devices)}")
        if len(config.target_ms) not in (0, 1, len(config.devices)):
            raise UsageError(f"{len(config.target_ms)} --target-ms for {len(config.devices)} devices: give one for "
                             "every device, or one per --device in the same order")
        if any(t <= 0 for t in config.target_ms):
            raise UsageError("--target-ms must be positive")
        if config.reference_prior < 0:
            raise UsageError(f"--reference-prior {config.reference_prior:g}: nats per unit of departure from Lite0, 0 "
                             "(none: θ alone decides) or more")
        if any(size % 32 or not 64 <= size <= 640 for size in config.input_sizes):
            raise UsageError(f"--input-size {', '.join(map(str, config.input_sizes))}: each a multiple of 32 from 64 "
                             "to 640")
        if not 0 <= config.budget_use <= 1:
            raise UsageError(f"--budget-use {config.budget_use:g}: a share of the budget, from 0 (cap only) to 1")
        return config

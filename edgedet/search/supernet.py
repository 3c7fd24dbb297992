"""The detection-aware supernet: every searchable layer a mixed op over its candidates, θ apart from the weights.

θ is one ``(layers, 9)`` parameter, columns in ``OP_NAMES`` order; ops the space forbids at a layer (``skip`` where
the shape changes, in some spaces) are masked to probability 0 and never built. Each forward pass draws fresh
Gumbel noise for EVERY SAMPLE of the batch (one draw per batch, as some public FBNet code does, makes a whole batch
share one architecture and the θ gradient far noisier), at temperature τ::

    w[b, l] = softmax((θ[l] + g[b, l]) / τ)          g ~ Gumbel(0, 1), shape (B, L, 9)

Two compute modes:

- ``single`` (default on CPU, GDAS-style): the hard one-hot of ``w`` in the forward pass with ``w``'s gradient
  (straight-through); only the sampled candidate runs for each sample (the batch is grouped by chosen op), so a
  step costs about one network, and its output is multiplied by the one-hot weight (exactly 1) so that θ gets a
  gradient;
- ``mixture`` (the paper's, default on CUDA): every candidate runs and the outputs are summed weighted by ``w``;
  about 9x the compute and activation memory of one network.

The search may switch between them per step (``path``): its ``hybrid`` mode trains the weights on the single path
and θ on the mixture, whose gradient compares every candidate on the same images.

In eval mode no noise is drawn: each layer runs its most probable op (the exported architecture).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedet.detect.model import Detector, normalise
from edgedet.errors import UsageError
from edgedet.search.config import MODES
from edgedet.search.derive import to_arch
from edgedet.space.archspec import ArchSpec
from edgedet.space.blocks import make_op, make_stem
from edgedet.space.spaces import OP_NAMES, LayerShape, SearchSpace

_GUMBEL_EPS = 1e-10  # keeps -log(-log(u)) finite at u = 0 or 1


def gumbel_weights(logits: torch.Tensor, batch: int, temperature: float, *, hard: bool) -> torch.Tensor:
    """(L, 9) logits (``-inf`` = forbidden) -> (B, L, 9) per-sample Gumbel-softmax weights; ``hard`` gives the
    one-hot of each draw with the soft draw's gradient (straight-through)."""
    u = torch.rand(batch, *logits.shape, device=logits.device).clamp_(_GUMBEL_EPS, 1.0 - _GUMBEL_EPS)
    soft = torch.softmax((logits - torch.log(-torch.log(u))) / temperature, -1)  # (B, L, 9)
    if not hard:
        return soft
    one_hot = torch.zeros_like(soft).scatter_(-1, soft.argmax(-1, keepdim=True), 1.0)
    return one_hot - soft.detach() + soft


class MixedOp(nn.Module):
    """One searchable layer: the candidates its space allows, combined by per-sample weights."""

    def __init__(self, layer: LayerShape, space: SearchSpace) -> None:
        super().__init__()
        self.op_names = space.allowed_ops(layer)
        self.columns = [OP_NAMES.index(op) for op in self.op_names]  # θ column of each candidate
        self.candidates = nn.ModuleList(
            make_op(op, in_ch=layer.cin, out_ch=layer.cout, stride=layer.stride, act=space.act)
            for op in self.op_names
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor, *, single: bool) -> torch.Tensor:
        """``x`` (B, C, H, W), ``weights`` (B, 9): one-hot rows if ``single`` (only chosen candidates run)."""
        if not single:
            return sum(weights[:, col, None, None, None] * op(x) for col, op in zip(self.columns, self.candidates))
        choice = weights.argmax(1)  # (B,)
        pieces, rows = [], []
        for col, op in zip(self.columns, self.candidates):
            picked = torch.nonzero(choice == col).squeeze(1)
            if len(picked):
                pieces.append(op(x[picked]) * weights[picked, col, None, None, None])  # weight is 1, carries dθ
                rows.append(picked)
        order = torch.cat(rows).argsort()  # back to batch order
        return torch.cat(pieces)[order]

    def run(self, col: int, x: torch.Tensor) -> torch.Tensor:
        """The candidate in θ column ``col`` alone."""
        return self.candidates[self.columns.index(col)](x)


class SuperBackbone(nn.Module):
    """``Backbone``'s interface over the whole space: ``forward(x)`` -> taps at strides 8/16/32; ``out_channels``."""

    def __init__(self, space: SearchSpace, imgsz: int, *, mode: str = "single", pretrained: bool = False,
                 temperature: float = 5.0, per_batch: bool = False) -> None:
        super().__init__()
        if mode not in MODES:
            raise UsageError(f"--mode {mode}: use single (one sampled op per sample) or mixture (all ops, soft)")
        layers = space.layers(imgsz)
        if imgsz < 64:
            raise UsageError(f"--imgsz {imgsz}: the search needs at least 64 (batch norm of a one-sample group at "
                             "stride 32 would see a single value)")
        self.space, self.mode, self.temperature, self.per_batch = space, mode, temperature, per_batch
        self.stem = make_stem(space.stem_out, space.act)
        self.layers = nn.ModuleList(MixedOp(layer, space) for layer in layers)
        mask = torch.zeros(len(layers), len(OP_NAMES), dtype=torch.bool)
        for index, layer in enumerate(self.layers):
            mask[index, layer.columns] = True
        self.register_buffer("mask", mask)
        self.theta = nn.Parameter(torch.zeros(len(layers), len(OP_NAMES)))
        self.taps = space.tap_layers()
        self.out_channels = space.tap_channels()
        if pretrained:
            self._inherit_lite0()

    def _inherit_lite0(self) -> None:
        """Every candidate of every layer starts from the ImageNet Lite0 block at its layer."""
        from edgedet.space.pretrained import inherit_lite0_op, inherit_lite0_stem, load_lite0_checkpoint

        if self.space.name != "lite0" or self.space.width_mult != 1.0:
            raise UsageError(f"ImageNet-pretrained weights exist only for the lite0 space at width 1.0, not "
                             f"'{self.space.name}' at {self.space.width_mult:g}")
        state = load_lite0_checkpoint()
        inherit_lite0_stem(self.stem, state)
        for index, layer in enumerate(self.layers):
            for op, block in zip(layer.op_names, layer.candidates):
                inherit_lite0_op(block, op, index, state)

    def _taps_from(self, start: int, x: torch.Tensor, ops: list[int]) -> dict[int, torch.Tensor]:
        """Layers ``start``… on ``x`` (layer ``start``'s input), one op each (θ columns): their tapped outputs."""
        taps = {}
        for index in range(start, len(self.layers)):
            x = self.layers[index].run(ops[index], x)
            if index in self.taps:
                taps[index] = x
        return taps

    @torch.no_grad()
    def departure_costs(self, x: torch.Tensor) -> np.ndarray:
        """(L, 9) what each candidate changes where it alone replaces its layer's reference op (the space's default):
        the relative squared change of the tapped features, ``|f' − f|² / |f|²`` averaged over the three taps, on
        normalised images ``x``; ``inf`` on forbidden ops. Measured in eval mode on the weights the candidates hold.

        Why: on inherited Lite0 weights this is how far a departure starts from the pretrained network, which a
        short training on few images does not close. Departures that save about the same latency differ by more
        than an order of magnitude (on coco-mini at 320: a skip at layer 12, 0.03; an e1 block at layer 8, 0.84),
        and θ cannot see it on a small set (its per-batch gradient is mostly noise).
        """
        was_training = self.training
        self.eval()
        reference = [OP_NAMES.index(op) for op in self.space.default_ops]
        inputs = [self.stem(x)]  # inputs[i]: layer i's input on the reference path; inputs[-1]: the last output
        for layer, col in zip(self.layers, reference):
            inputs.append(layer.run(col, inputs[-1]))
        expected = {index: inputs[index + 1] for index in self.taps}
        costs = np.full((len(self.layers), len(OP_NAMES)), np.inf)
        for index, layer in enumerate(self.layers):
            costs[index, reference[index]] = 0.0  # the reference op changes nothing
            for col in set(layer.columns) - {reference[index]}:
                taps = self._taps_from(index, inputs[index], reference[:index] + [col] + reference[index + 1:])
                costs[index, col] = sum(float((f - expected[i]).square().sum() / expected[i].square().sum())
                                        for i, f in taps.items()) / len(expected)
        self.train(was_training)
        return costs

    @contextmanager
    def path(self, mode: str) -> Iterator[None]:
        """Run ``mode`` (single or mixture) inside, whatever the backbone was built with."""
        built, self.mode = self.mode, mode
        try:
            yield
        finally:
            self.mode = built

    def logits(self) -> torch.Tensor:
        """(L, 9) θ with forbidden ops at ``-inf``."""
        return self.theta.masked_fill(~self.mask, -math.inf)

    def probs(self) -> torch.Tensor:
        """(L, 9) architecture probabilities, 0 on forbidden ops; differentiable in θ."""
        return torch.softmax(self.logits(), -1)

    def sample(self, batch: int) -> torch.Tensor:
        """(B, L, 9) per-sample weights: fresh Gumbel draws in training (one for the whole batch when
        ``per_batch``), the argmax one-hot in eval."""
        if not self.training:
            argmax = self.logits().argmax(-1)  # (L,)
            return nn.functional.one_hot(argmax, len(OP_NAMES)).to(self.theta.dtype).expand(batch, -1, -1)
        draws = 1 if self.per_batch else batch
        weights = gumbel_weights(self.logits(), draws, self.temperature, hard=self.mode == "single")
        return weights.expand(batch, -1, -1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        weights = self.sample(len(x))  # (B, L, 9)
        single = self.mode == "single" or not self.training
        x = self.stem(x)  # (B, C, H/2, W/2)
        features = []
        for index, layer in enumerate(self.layers):
            x = layer(x, weights[:, index], single=single)
            if index in self.taps:
                features.append(x)
        return features


class Supernet(Detector):
    """The detection-aware supernet: a ``Detector`` (neck, head, loss) on a ``SuperBackbone``. Its ``arch`` is the
    space's reference architecture, which fixes only the input size and activation; ``export()`` is the search's."""

    def __init__(self, space: SearchSpace, imgsz: int, num_classes: int, *, mode: str = "single",
                 pretrained: bool = False, neck_channels: int = 96, per_batch: bool = False) -> None:
        reference = ArchSpec(space.name, imgsz, space.default_ops, space.width_mult)
        super().__init__(reference, num_classes, neck_channels=neck_channels,
                         backbone=SuperBackbone(space, imgsz, mode=mode, pretrained=pretrained, per_batch=per_batch))

    @property
    def temperature(self) -> float:
        return self.backbone.temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self.backbone.temperature = value

    def arch_parameters(self) -> list[nn.Parameter]:
        """θ alone: its own optimizer (Adam) on its own 20% of the images."""
        return [self.backbone.theta]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Everything but θ: stem, every candidate, neck and head."""
        return [p for p in self.parameters() if p is not self.backbone.theta]

    def departure_costs(self, images: torch.Tensor) -> np.ndarray:
        """``SuperBackbone.departure_costs`` on float RGB images in 0..255, as the detector takes them."""
        return self.backbone.departure_costs(normalise(images))

    def log_probs(self) -> np.ndarray:
        """(L, 9) float64 log-probabilities, ``-inf`` on forbidden ops (computed in float64: no underflow)."""
        return torch.log_softmax(self.backbone.logits().detach().double(), -1).cpu().numpy()

    def export(self) -> ArchSpec:
        """The most probable op of every layer."""
        return to_arch(self.backbone.space, self.arch.imgsz, self.backbone.logits().argmax(-1).tolist())

    def export_probs(self) -> list[dict[str, float]]:
        """Per layer, ``{op: probability}`` over the ops allowed there."""
        return self.per_layer(self.backbone.probs().detach().cpu().numpy())

    def per_layer(self, values: np.ndarray) -> list[dict[str, float]]:
        """(L, 9) values -> per layer, ``{op: value}`` over the ops allowed there (for JSON)."""
        return [{op: round(float(row[col]), 6) for op, col in zip(layer.op_names, layer.columns)}
                for row, layer in zip(values, self.backbone.layers)]


def path_state_dict(supernet_state: dict[str, torch.Tensor], arch: ArchSpec) -> dict[str, torch.Tensor]:
    """A stand-alone ``Detector``'s weights for ``arch`` cut from a supernet's state: the stem, neck and head as
    they are, each layer's op from its candidate (weight sharing as once-for-all uses it: an architecture starts
    from what the search trained on its path, not from ImageNet alone, whatever its input size)."""
    space = arch.search_space
    chosen = [space.allowed_ops(layer).index(op) for op, layer in zip(arch.ops, arch.layers())]
    state = {}
    for key, value in supernet_state.items():
        if key.startswith("backbone.layers."):  # backbone.layers.<layer>.candidates.<candidate>.<rest>
            _, _, layer, _, candidate, rest = key.split(".", 5)
            if int(candidate) == chosen[int(layer)]:
                state[f"backbone.layers.{layer}.{rest}"] = value
        elif key not in ("backbone.theta", "backbone.mask"):
            state[key] = value
    return state


def inherit_from_search(model: Detector, arch: ArchSpec, class_names: list[str], run: Path) -> None:
    """``model`` (a ``Detector`` for ``arch``) loaded with the weights of search ``run``'s supernet on its path;
    the search must have trained the same classes in the same space, neck and width."""
    from edgedet.train.checkpoint import read_checkpoint

    if not (run / "last.pt").is_file():
        raise UsageError(f"init_from {run}: no search checkpoint there (last.pt); give a runs/search/NAME folder")
    searched = read_checkpoint(run / "last.pt")
    if "arch_optimizer" not in searched:
        raise UsageError(f"init_from {run}: a training's checkpoint, not a search's")
    if searched["class_names"] != class_names:
        raise UsageError(f"init_from {run}: the search trained {', '.join(searched['class_names'])}, this training "
                         f"{', '.join(class_names)}; give the same --classes")
    try:
        model.load_state_dict(path_state_dict(searched["model"], arch))
    except RuntimeError as err:
        raise UsageError(f"init_from {run}: its supernet does not fit {arch} with this head and neck "
                         f"({str(err).splitlines()[0]}); search and train in one space, neck and width") from None

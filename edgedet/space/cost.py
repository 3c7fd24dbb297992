"""What each op costs, from shapes alone: MACs, parameters and tensor sizes, kernel by kernel.

``arch show`` sums these per layer; the analytic latency model turns each kernel into time (roofline:
compute vs memory, plus a per-kernel launch overhead). Torch-free on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgedet.space.spaces import CANDIDATES, LayerShape, SearchSpace


@dataclass(frozen=True)
class Kernel:
    """One fused conv+BN(+act) or elementwise add, as a runtime executes it."""

    kind: str  # "conv" (dense), "gconv" (grouped 1x1), "dwconv" (depthwise) or "add"
    macs: int
    params: int
    in_elems: int
    out_elems: int


def _conv(cin: int, cout: int, k: int, groups: int, in_hw: int, out_hw: int) -> Kernel:
    kind = "dwconv" if groups == cin == cout and groups > 1 else ("gconv" if groups > 1 else "conv")
    weights = cout * (cin // groups) * k * k
    return Kernel(kind, weights * out_hw, weights + 2 * cout, cin * in_hw, cout * out_hw)


def op_kernels(op: str, layer: LayerShape) -> list[Kernel]:
    """The kernels of candidate ``op`` at ``layer``: expand 1x1, depthwise kxk, project 1x1 (+ residual add)."""
    spec = CANDIDATES[op]
    in_hw = layer.height * layer.width
    out_hw = (layer.height // layer.stride) * (layer.width // layer.stride)
    if spec.is_skip:
        return [_conv(layer.cin, layer.cout, 1, 1, in_hw, out_hw)] if layer.changes_shape else []
    mid = layer.cin * spec.expansion
    kernels = [
        _conv(layer.cin, mid, 1, spec.groups, in_hw, in_hw),
        _conv(mid, mid, spec.kernel, mid, in_hw, out_hw),
        _conv(mid, layer.cout, 1, spec.groups, out_hw, out_hw),
    ]
    if not layer.changes_shape:
        kernels.append(Kernel("add", out_hw * layer.cout, 0, 2 * out_hw * layer.cout, out_hw * layer.cout))
    return kernels


def stem_kernels(space: SearchSpace, imgsz: int) -> list[Kernel]:
    return [_conv(3, space.stem_out, 3, 1, imgsz**2, (imgsz // 2) ** 2)]


def total(kernels: list[Kernel]) -> tuple[int, int]:
    """(MACs, params) of a list of kernels."""
    return sum(k.macs for k in kernels), sum(k.params for k in kernels)

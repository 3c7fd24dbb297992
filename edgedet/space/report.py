"""The per-layer view of an architecture that ``edgedet arch show`` prints."""

from __future__ import annotations

from typing import Any

from edgedet.devices.latency import LatencyModel
from edgedet.space.archspec import ArchSpec
from edgedet.space.cost import op_kernels, stem_kernels, total


def arch_rows(arch: ArchSpec, model: LatencyModel | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per layer (stem and fixed costs first) and a totals row."""
    space = arch.search_space
    macs, params = total(stem_kernels(space, arch.imgsz))
    rows: list[dict[str, Any]] = [{
        "layer": "stem", "op": "conv3x3", "input": f"3x{arch.imgsz}x{arch.imgsz}",
        "output": f"{space.stem_out}x{arch.imgsz // 2}x{arch.imgsz // 2}", "params": params, "MMACs": macs / 1e6,
    }]
    if model:
        rows[0]["ms"] = model.fixed_ms(space, arch.imgsz)
    taps = space.tap_layers()
    for op, layer in zip(arch.ops, arch.layers()):
        macs, params = total(op_kernels(op, layer))
        out = layer.height // layer.stride
        row = {"layer": f"{layer.index}" + (" (tap)" if layer.index in taps else ""), "op": op,
               "input": f"{layer.cin}x{layer.height}x{layer.width}", "output": f"{layer.cout}x{out}x{out}",
               "params": params, "MMACs": macs / 1e6}
        if model:
            row["ms"] = model.layer_ms(op, layer)
        rows.append(row)
    totals = {key: (sum(r[key] for r in rows) if key in ("params", "MMACs", "ms") else "") for key in rows[0]}
    totals["layer"] = "total"
    return rows, totals

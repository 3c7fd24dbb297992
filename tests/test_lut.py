"""A real `profile build` + `profile check` on the tiny space (seconds), and the LUT's error messages."""

import json

import numpy as np
import onnx
import pytest

from edgedet.devices.builder import BuildSettings, build_lut, onnx_model
from edgedet.devices.check import check_profile, record_check, summarize
from edgedet.devices.latency import LatencyLUT, layer_table, predict_ms
from edgedet.devices.profile import get_profile, load_profile
from edgedet.errors import UsageError
from edgedet.runtime.session import make_session
from edgedet.space import ArchSpec, get_space
from edgedet.space.blocks import make_op


@pytest.fixture(scope="module")
def tiny_profile(tmp_path_factory):
    out = tmp_path_factory.mktemp("profile") / "runs" / "profile" / "tinyhost"
    return build_lut(BuildSettings("tinyhost", get_space("tiny"), 64, rounds=3, calibration_archs=2), out)


def test_build_writes_every_entry_the_space_needs(tiny_profile):
    lut = tiny_profile.latency_model()
    space = get_space("tiny")
    table = layer_table(lut, space, 64)
    assert table.shape == (5, 9) and np.isfinite(table).all() and (table > 0).all()
    assert lut.provenance["protocol"].startswith("interleaved-reference")
    assert lut.reference["tiny@64"]["ms"] > 0
    # more work costs more: the widest expansion is never faster than the narrowest, summed over layers
    assert table[:, 3].sum() > table[:, 0].sum()  # k3_e6 vs k3_e1
    assert 0 < predict_ms(lut, ArchSpec.default("tiny")) < 10


def test_check_measures_whole_models(tiny_profile, in_tmp):
    rows, speed = check_profile(tiny_profile, samples=5, rounds=3)
    summary = summarize(rows, speed)
    assert summary["samples"] == 5 and speed > 0
    for row in rows:  # the prediction is in the right range even on a noisy machine
        assert 0.33 < row.predicted_ms / row.measured_ms < 3
    assert set(summary) >= {"within_10pct", "spearman", "mean_abs_pct_error", "max_abs_pct_error"}


def test_a_fresh_profile_claims_nothing_until_checked_then_states_what_was_measured(tiny_profile, in_tmp):
    fresh = load_profile(tiny_profile.path)
    assert fresh.latency["expected_error"].startswith("unchecked: `edgedet profile check tinyhost`")
    assert fresh.runtime["providers"] == ["CPUExecutionProvider"]
    assert fresh.latency_model().provenance["provider"] == "cpu"
    rows, speed = check_profile(fresh, samples=3, rounds=2)
    assert record_check(fresh, "fp32", summarize(rows, speed))
    checked = load_profile(tiny_profile.path).latency
    assert checked["expected_error"].startswith("fp32 (checked ") and "3 random backbones" in checked["expected_error"]
    assert checked["checks"]["fp32"]["samples"] == 3
    assert not record_check(get_profile("jetson"), "fp16", summarize(rows, speed))  # shipped profiles stay as they are


def test_built_profile_is_found_by_id(tiny_profile, monkeypatch):
    monkeypatch.chdir(tiny_profile.path.parents[3])
    assert get_profile("tinyhost").path.resolve() == tiny_profile.path.resolve()


def test_missing_entry_names_the_entry_and_the_rebuild_command(tiny_profile):
    lut = tiny_profile.latency_model()
    with pytest.raises(UsageError, match=r"no entry 'stem 3>32 s2 320x320 .*edgedet profile build --name tinyhost"):
        predict_ms(lut, ArchSpec.default("lite0"))


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("entries"), "missing field 'entries'"),
    (lambda d: d.update(format="other"), "field 'format'"),
    (lambda d: d["entries"].update({"stem x": "fast"}), "non-numeric or negative latency at 'stem x'"),
])
def test_malformed_lut_names_file_and_field(tiny_profile, tmp_path, mutate, message):
    data = json.loads((tiny_profile.path.parent / "tinyhost.fp32.json").read_text())
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match=message) as err:
        LatencyLUT.load(path)
    assert str(path) in str(err.value)


def test_int8_lut_is_separate(tiny_profile):
    with pytest.raises(UsageError, match="no int8 latencies.*--precision int8"):
        tiny_profile.latency_model("int8")


def _constant(graph, name: str) -> np.ndarray:
    for tensor in graph.initializer:
        if tensor.name == name:
            return onnx.numpy_helper.to_array(tensor)
    node = next(n for n in graph.node if n.op_type == "Constant" and n.output[0] == name)
    return onnx.numpy_helper.to_array(node.attribute[0].t)


def test_int8_block_is_timed_with_int8_edges_and_computes_what_the_whole_qdq_block_does():
    """A block inside a quantized network gets and gives uint8; timed alone it must not pay float conversions."""
    space = get_space("tiny")
    layer = space.layers(64)[1]
    block = make_op("k3_e6", in_ch=layer.cin, out_ch=layer.cout, stride=layer.stride, act=space.act)
    part = make_session(onnx_model(block, (1, layer.cin, layer.height, layer.width), "int8", part=True))
    assert [v.type for v in part.get_inputs() + part.get_outputs()] == ["tensor(uint8)"] * 2

    whole_bytes = onnx_model(block, (1, layer.cin, layer.height, layer.width), "int8")
    graph = onnx.load_from_string(whole_bytes).graph
    quantize = next(n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == graph.input[0].name)
    dequantize = next(n for n in graph.node if n.op_type == "DequantizeLinear" and n.output[0] == graph.output[0].name)
    scale_in, zero_in = (_constant(graph, name) for name in quantize.input[1:3])
    scale_out, zero_out = (_constant(graph, name) for name in dequantize.input[1:3])

    codes = np.random.default_rng(0).integers(0, 256, (1, layer.cin, layer.height, layer.width), dtype=np.uint8)
    floats = ((codes.astype(np.float32) - zero_in) * scale_in).astype(np.float32)  # exactly on the int8 grid
    whole = make_session(whole_bytes)
    expected = whole.run(None, {whole.get_inputs()[0].name: floats})[0]
    got = part.run(None, {part.get_inputs()[0].name: codes})[0]
    np.testing.assert_allclose((got.astype(np.float32) - zero_out) * scale_out, expected, rtol=0, atol=1e-6)


def test_rebuilding_with_another_thread_count_is_refused_before_measuring(tiny_profile):
    settings = BuildSettings("tinyhost", get_space("tiny"), 64, threads=2, rounds=1, calibration_archs=1)
    with pytest.raises(UsageError, match=r"measured with runtime ort-cpu-t1, not ort-cpu-t2 .*another --name"):
        build_lut(settings, tiny_profile.path.parent)


def test_host_is_measured_for_the_space_size_and_precision_in_use(tiny_profile, in_tmp, monkeypatch):
    """``host`` resolves to the built profile while its LUT covers the search; one that does not is measured."""
    from edgedet.devices import builder

    built = []
    (in_tmp / "built" / "host").mkdir(parents=True)
    (in_tmp / "built" / "host" / "profile.yaml").touch()
    monkeypatch.setattr(builder, "BUILT_DIR", in_tmp / "built")
    monkeypatch.setattr(builder, "get_profile", lambda name: tiny_profile)
    monkeypatch.setattr(builder, "build_lut", lambda settings, out: built.append(settings) or tiny_profile)
    assert builder.get_or_build_profile("host", get_space("tiny"), 64) is tiny_profile and not built
    builder.get_or_build_profile("host", get_space("tiny"), 96, "int8")
    assert [(s.space.name, s.imgsz, s.precision) for s in built] == [("tiny", 96, "int8")]

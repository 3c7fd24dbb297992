"""Every shipped profile loads, predicts every candidate at every layer, and bad profiles fail clearly."""

import numpy as np
import pytest

from edgedet.devices.latency import layer_table, predict_ms
from edgedet.devices.profile import SHIPPED_DIR, get_profile, list_profiles, load_profile
from edgedet.errors import UsageError
from edgedet.space import ArchSpec, get_space

SHIPPED = sorted(p.id for p in list_profiles() if p.path.is_relative_to(SHIPPED_DIR))


def test_the_promised_profiles_ship():
    assert {"jetson-orin-nano", "jetson-tx2", "raspi4"} <= set(SHIPPED)
    assert get_profile("jetson").id == "jetson-orin-nano"


@pytest.mark.parametrize("device", SHIPPED)
def test_profile_predicts_every_op_and_is_honest_about_its_source(device):
    profile = get_profile(device)
    assert profile.latency["expected_error"] and profile.latency["provenance"]
    for precision in profile.precisions:
        model = profile.latency_model(precision)
        table = layer_table(model, get_space("lite0"), 320)
        allowed = np.isfinite(table)
        assert (table[allowed] >= 0).all() and allowed.sum() == 16 * 9 - 7  # lite0 forbids 7 reshaping skips
        assert 0 < predict_ms(model, ArchSpec.default("lite0")) < 1000


def test_measured_profile_ranks_big_ops_slower():
    model = get_profile("xeon-2vcpu").latency_model("fp32")
    table = layer_table(model, get_space("lite0"), 320)
    assert (table[:, 3] > table[:, 0]).all()  # k3_e6 slower than k3_e1 at every layer


def test_int8_changes_which_op_is_fast():
    """The measured INT8 LUT of this machine: grouped ops get slower, e6 ops faster (why INT8 needs its own LUT)."""
    profile = get_profile("xeon-2vcpu")
    fp32 = layer_table(profile.latency_model("fp32"), get_space("lite0"), 320)
    int8 = layer_table(profile.latency_model("int8"), get_space("lite0"), 320)
    assert np.median(int8[:, 1] / fp32[:, 1]) > 1.2  # k3_e1_g2
    assert np.median(int8[:, 3] / fp32[:, 3]) < 0.9  # k3_e6


@pytest.mark.parametrize("text, message", [
    ("id: x\nruntime: {}\n", "missing field 'latency'"),
    ("id: x\nruntime: {precision: fp64}\nlatency: {source: lut, luts: {fp32: a.json}}\n", "runtime.precision"),
    ("id: x\nruntime: {}\nlatency: {source: guess}\n", "latency.source"),
    ("id: x\nruntime: {}\nlatency: {source: lut, luts: {}}\n", "latency.luts"),
    ("id: [x\n", "not valid YAML"),
])
def test_malformed_profile_names_file_and_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message) as err:
        load_profile(path)
    assert str(path) in str(err.value)


def test_unknown_device_lists_close_matches():
    with pytest.raises(UsageError, match="unknown device 'raspi5'. Did you mean: raspi4"):
        get_profile("raspi5")


def test_profile_show_says_where_an_analytic_profile_comes_from_and_how_far_to_trust_it():
    from typer.testing import CliRunner

    from edgedet.cli import app

    shown = CliRunner().invoke(app, ["profile", "show", "jetson"], terminal_width=400)
    assert shown.exit_code == 0, shown.output
    assert "latency source: analytic prior, not measured (fp32, fp16, int8)" in shown.output
    assert "how far to trust it: Unvalidated" in shown.output and "where it comes from: Peak rates" in shown.output

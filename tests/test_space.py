import json
import math
import subprocess
import sys

import pytest
import torch

from edgedet.errors import UsageError
from edgedet.space import OP_NAMES, SPACES, ArchSpec, get_space
from edgedet.space.backbone import Backbone
from edgedet.space.blocks import make_op
from edgedet.space.cost import op_kernels, total
from edgedet.space.spaces import LayerShape

SHAPES = {
    "same": LayerShape(0, 0, 16, 16, 1, 20, 20),
    "wider": LayerShape(0, 0, 16, 24, 1, 20, 20),
    "stride2": LayerShape(0, 0, 16, 24, 2, 20, 20),
}


@pytest.mark.parametrize("op", OP_NAMES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_candidate_shapes_params_and_residual(op, shape):
    layer = SHAPES[shape]
    block = make_op(op, in_ch=layer.cin, out_ch=layer.cout, stride=layer.stride, act="relu").eval()
    x = torch.randn(2, layer.cin, layer.height, layer.width)
    y = block(x)
    assert y.shape == (2, layer.cout, layer.height // layer.stride, layer.width // layer.stride)
    # the torch-free cost model counts exactly the parameters torch builds
    assert sum(p.numel() for p in block.parameters()) == total(op_kernels(op, layer))[1]
    if shape == "same" and op != "skip":
        assert block.residual
        # with the last BN zeroed the block is the identity: the residual is really there
        torch.nn.init.zeros_(block.project.bn.weight)
        torch.nn.init.zeros_(block.project.bn.bias)
        assert torch.allclose(block(x), x)


@pytest.mark.parametrize("space", SPACES)
def test_feature_taps_at_strides_8_16_32(space):
    arch = ArchSpec.default(space)
    features = Backbone(arch).eval()(torch.randn(1, 3, arch.imgsz, arch.imgsz))
    channels = get_space(space).tap_channels()
    assert [tuple(f.shape[1:]) for f in features] == [
        (c, arch.imgsz // s, arch.imgsz // s) for c, s in zip(channels, (8, 16, 32))
    ]


def test_paper_space_sizes():
    fbnet, lite0 = get_space("fbnet"), get_space("lite0")
    assert fbnet.num_layers == 22 and lite0.num_layers == 16
    assert math.prod(len(fbnet.allowed_ops(layer)) for layer in fbnet.layers(224)) == 9**22


def test_lite0_default_matches_efficientnet_lite0():
    backbone = Backbone(ArchSpec.default("lite0"))
    assert sum(p.numel() for p in backbone.parameters()) == 2_959_936  # Lite0 features without the 1280 head


@pytest.mark.parametrize("text", [
    "lite0@320:" + ",".join(SPACES["lite0"].default_ops),
    "fbnet,w0.5@256:" + ",".join(["k3_e1"] + ["skip", "k5_e1_g2", "k3_e3"] * 7),
    "tiny@64:k3_e1,skip,k5_e6,k3_e1_g2,k5_e3",
])
def test_archspec_round_trips(text):
    arch = ArchSpec.parse(text)
    assert str(arch) == text
    assert ArchSpec.parse(str(arch)) == arch
    assert ArchSpec.from_json(json.loads(json.dumps(arch.to_json()))) == arch


def test_archspec_defaults_and_json_provenance(tmp_path):
    arch = ArchSpec.parse("lite0")
    assert arch.imgsz == 320 and arch.ops == SPACES["lite0"].default_ops
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(ArchSpec(arch.space, 320, arch.ops, provenance={"device": "jetson"}).to_json()))
    assert ArchSpec.load(path).provenance == {"device": "jetson"}


@pytest.mark.parametrize("text, message", [
    ("tiny@64:k3_e1,k3_e7,k5_e6,k3_e1,k5_e3", "layer 1: unknown op 'k3_e7'"),
    ("tiny@64:k3_e1,k3_e1", "has 2 ops but space 'tiny' has 5"),
    ("lite0@320:skip" + ",k3_e6" * 15, "layer 0: 'skip' is not allowed where the shape changes"),
    ("tiny@65:k3_e1,k3_e1,k3_e1,k3_e1,k3_e1", "not a positive multiple of 32"),
    ("lite1@320", "did you mean 'lite0'"),
    ("lite0@abc", "expected SPACE[,wMULT][@IMGSZ]"),
])
def test_invalid_archspec_names_the_problem(text, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("(", r"\(")):
        ArchSpec.parse(text)


def test_width_multiplier_scales_channels():
    assert get_space("fbnet", width_mult=0.5).tap_channels() == (16, 56, 176)


STRIDED_SKIP_TRAINING = """
import torch
from edgedet.space.blocks import make_op
torch.manual_seed(0)
block = make_op("skip", in_ch=8, out_ch=16, stride=2, act="relu").train().to(memory_format=torch.channels_last)
for batch, size in [(3, 32), (1, 64)] * 40:
    x = torch.randn(batch, 8, size, size).contiguous(memory_format=torch.channels_last).requires_grad_()
    block(x).square().mean().backward()
print("trained")
"""


def test_strided_skip_trains_channels_last_with_few_channels_and_computes_a_strided_1x1_conv():
    """oneDNN's strided 1x1 conv backward corrupts the heap at these shapes (it aborted tiny-space searches); the
    block must not reach it, in a child process so that a regression fails this test instead of the whole run."""
    result = subprocess.run([sys.executable, "-c", STRIDED_SKIP_TRAINING], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "trained" in result.stdout, result.stderr[-500:]
    block = make_op("skip", in_ch=8, out_ch=16, stride=2, act="relu").eval()
    x = torch.randn(2, 8, 15, 15)
    conv, bn = block.proj.conv, block.proj.bn
    expected = torch.relu(bn(torch.nn.functional.conv2d(x, conv.weight, stride=2)))
    torch.testing.assert_close(block(x), expected)

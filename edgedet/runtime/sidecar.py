"""The ``model.json`` sidecar: what a runtime needs to use an exported model, beside ``model.onnx``.

``model.onnx`` -> ``model.json``, ``model.int8.onnx`` -> ``model.int8.json``: the sidecar is the ONNX path with
``.json`` for ``.onnx``. It records the ArchSpec, the input contract (size, letterbox, colour order, range; the
normalisation happens inside the graph), the output layout, class names with their COCO category ids, the
precision, and where the model came from. Torch-free.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgedet.errors import UsageError

CARD_FORMAT = "edgedet-model/1"
INPUT_CONTRACT = {
    "name": "images", "layout": "NCHW", "dtype": "float32", "color": "RGB", "range": "0..255",
    "letterbox": "longer side to imgsz (bilinear), pad right and bottom with 114; boxes map back as box / scale",
    "normalisation": "inside the graph: (x - 127) / 128",
}
OUTPUT_CONTRACT = {
    "decode": "points",
    "dtype": "float32",  # also for FP16 models: their graphs compute in FP16 and convert at the edges
    "layout": "(1, N, 4 + K): per anchor point of the stride 8, 16, 32 grids (row-major), l, t, r, b regression "
              "then K class logits; distance = exp(reg) * stride from the point centre, score = sigmoid(logit)",
    "strides": [8, 16, 32],
}
BOXES_OUTPUT_CONTRACT = {
    "decode": "boxes",
    "dtype": "float32",
    "layout": "(1, N, 4 + K): per default box, x1, y1, x2, y2 in model-input pixels (decoded in the graph), then K "
              "class probabilities (softmax, background dropped)",
}


@dataclass
class ModelCard:
    arch: str
    imgsz: int
    class_names: list[str]
    category_ids: list[int]
    precision: str = "fp32"
    version: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)  # INT8 models: flavour, activation and weight types
    format: str = CARD_FORMAT
    input: dict[str, Any] = field(default_factory=lambda: dict(INPUT_CONTRACT))
    output: dict[str, Any] = field(default_factory=lambda: dict(OUTPUT_CONTRACT))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> "ModelCard":
        if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
            raise UsageError(f"{where}: not an edgedet model sidecar (field 'format' must be '{CARD_FORMAT}')")
        missing = [k for k in ("arch", "imgsz", "class_names", "category_ids") if k not in data]
        if missing:
            raise UsageError(f"{where}: missing field '{missing[0]}'")
        if len(data["class_names"]) != len(data["category_ids"]):
            raise UsageError(f"{where}: class_names and category_ids differ in length")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def sidecar_path(model: Path) -> Path:
    return Path(model).with_suffix(".json")


def read_card(model: Path) -> ModelCard:
    """The sidecar of ``model`` (an .onnx path); its absence is a usage error that says how to get one."""
    path = sidecar_path(model)
    if not path.is_file():
        raise UsageError(f"{model}: no sidecar {path.name} beside it; export the model with `edgedet export` "
                         f"(peer models without a sidecar can only be timed: `edgedet benchmark`)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UsageError(f"{path}: not valid JSON ({err})") from None
    return ModelCard.from_json(data, str(path))

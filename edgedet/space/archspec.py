"""ArchSpec: which candidate op each searchable layer uses, in a space, at an input size.

String form (round-trips through ``str`` and ``ArchSpec.parse``)::

    SPACE[,wMULT][@IMGSZ][:OP,OP,...]

    lite0@320:k3_e1,k3_e6,k3_e6,k5_e6,...     one op per searchable layer, in order
    fbnet,w0.5@256:k3_e1,skip,...             width multiplier 0.5
    lite0                                      the space's default ops at its default size

JSON form (``arch.json``): ``{"arch": "<string form>", "space", "imgsz", "width_mult", "ops", "provenance"}``,
where provenance records where the architecture came from (search config, device, predicted latency...).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedet.errors import UsageError
from edgedet.space.spaces import CANDIDATES, LayerShape, SearchSpace, check_imgsz, get_space

_HEAD = re.compile(r"^(?P<space>[a-z0-9_]+)(,w(?P<width>[0-9.]+))?(@(?P<imgsz>\d+))?$")


@dataclass(frozen=True)
class ArchSpec:
    space: str
    imgsz: int
    ops: tuple[str, ...]
    width_mult: float = 1.0
    provenance: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def search_space(self) -> SearchSpace:
        return get_space(self.space, width_mult=self.width_mult)

    def layers(self) -> list[LayerShape]:
        return self.search_space.layers(self.imgsz)

    def validate(self) -> None:
        """Raise a UsageError that names the first bad position."""
        space = self.search_space
        check_imgsz(self.imgsz)
        for index, op in enumerate(self.ops):
            if op not in CANDIDATES:
                raise UsageError(f"layer {index}: unknown op {op!r}; candidates: {', '.join(CANDIDATES)}")
        if len(self.ops) != space.num_layers:
            raise UsageError(
                f"architecture '{self}' has {len(self.ops)} ops but space '{space.name}' has "
                f"{space.num_layers} searchable layers"
            )
        for layer, op in zip(space.layers(self.imgsz), self.ops):
            if op not in space.allowed_ops(layer):
                raise UsageError(
                    f"layer {layer.index}: 'skip' is not allowed where the shape changes "
                    f"({layer.cin}->{layer.cout} channels, stride {layer.stride}) in space '{space.name}'"
                )

    def __str__(self) -> str:
        width = "" if self.width_mult == 1.0 else f",w{self.width_mult:g}"
        return f"{self.space}{width}@{self.imgsz}:{','.join(self.ops)}"

    @classmethod
    def parse(cls, text: str) -> "ArchSpec":
        head, _, body = text.strip().partition(":")
        match = _HEAD.match(head)
        if not match:
            raise UsageError(f"cannot read architecture {text!r}: expected SPACE[,wMULT][@IMGSZ][:OP,OP,...]")
        width = float(match["width"]) if match["width"] else 1.0
        space = get_space(match["space"], width_mult=width)
        imgsz = int(match["imgsz"]) if match["imgsz"] else space.default_imgsz
        ops = tuple(op.strip() for op in body.split(",")) if body else space.default_ops
        return cls(space.name, imgsz, ops, width)

    @classmethod
    def default(cls, space: str, imgsz: int | None = None) -> "ArchSpec":
        found = get_space(space)
        return cls(space, imgsz or found.default_imgsz, found.default_ops)

    def to_json(self) -> dict[str, Any]:
        return {"arch": str(self), "space": self.space, "imgsz": self.imgsz, "width_mult": self.width_mult,
                "ops": list(self.ops), "provenance": self.provenance}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ArchSpec":
        try:
            return cls(data["space"], int(data["imgsz"]), tuple(data["ops"]), float(data.get("width_mult", 1.0)),
                       dict(data.get("provenance", {})))
        except (KeyError, TypeError, ValueError) as err:
            raise UsageError(f"not an ArchSpec JSON object ({err!r}): expected space, imgsz and ops") from None

    @classmethod
    def load(cls, source: str | Path) -> "ArchSpec":
        """An ``arch.json`` path or an ArchSpec string."""
        path = Path(source)
        if path.suffix == ".json":
            if not path.is_file():
                raise UsageError(f"{path}: no such file")
            try:
                return cls.from_json(json.loads(path.read_text()))
            except json.JSONDecodeError as err:
                raise UsageError(f"{path}: not valid JSON ({err})") from None
        return cls.parse(str(source))

    def with_imgsz(self, imgsz: int) -> "ArchSpec":
        return ArchSpec(self.space, imgsz, self.ops, self.width_mult, self.provenance)


def sample_arch(space: SearchSpace, imgsz: int, rng: random.Random) -> ArchSpec:
    """A uniformly random architecture: each layer draws from the ops its space allows there."""
    ops = tuple(rng.choice(space.allowed_ops(layer)) for layer in space.layers(imgsz))
    return ArchSpec(space.name, imgsz, ops, space.width_mult)

"""The search space: candidate ops, macro-architectures, ArchSpec, and (with torch) backbones."""

from edgedet.space.archspec import ArchSpec
from edgedet.space.spaces import CANDIDATES, OP_NAMES, SPACES, LayerShape, OpDef, SearchSpace, get_space

__all__ = ["ArchSpec", "CANDIDATES", "OP_NAMES", "SPACES", "LayerShape", "OpDef", "SearchSpace", "get_space"]

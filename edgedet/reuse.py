"""One rule for reusing earlier work, wherever work is reused (pipeline stages, benchmark runs and parts, resumed
CLI runs): work made with the same settings, whose files all still exist, is reused; work made with other settings
is never passed off as made with these. Folders a tool owns (pipeline stages, benchmark runs) are redone; a user's
run folder is never touched: resuming it with other settings is refused, naming them.

Settings compare as canonical JSON, so a tuple equals the list it was saved as and a path its string."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def settings_digest(settings: Any) -> str:
    """A short fingerprint of the settings (what the pipeline's manifest keeps per stage)."""
    return hashlib.sha256(_canonical(settings).encode()).hexdigest()[:16]


def changed_settings(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """The keys of ``wanted`` whose value differs from (or is missing in) ``saved``, sorted."""
    return sorted(key for key, value in wanted.items()
                  if key not in saved or _canonical(saved[key]) != _canonical(value))

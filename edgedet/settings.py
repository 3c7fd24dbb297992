"""Settings of a run: dataclass fields checked by key and type wherever they come from (CLI, ``--set``, YAML, a
saved ``config.json``), and the defaults the CLI shows. Torch-free, so ``edgedet --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any

from edgedet.errors import UsageError


def parse_set_items(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as a run stores them: each value read as YAML (``0.05`` a number, ``[16, 1]`` a
    list, anything else a string)."""
    import yaml

    values: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: use KEY=VALUE, e.g. --set weight_decay=0.01")
        try:
            values[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise UsageError(f"--set {item!r}: cannot read the value as YAML ({str(err).splitlines()[0]})") from None
    return values


def parse_duration(text: str) -> float:
    """Seconds from ``90m``, ``1.5h``, ``600s`` or a bare number of minutes."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = str(text).strip().lower()
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "m")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise UsageError(f"--time {text}: give a positive duration such as 90m, 1.5h or 600s")
    return seconds


def _fits(value: Any, hint: Any) -> bool:
    """Whether a value read from YAML or JSON fits a dataclass field's type (an int is a float; a bool is neither)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin in (list, dict):
        return isinstance(value, origin) and (origin is dict or all(_fits(v, args[0]) for v in value))
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if isinstance(value, bool) and hint is not bool:
        return False
    return isinstance(value, (int, float) if hint is float else hint)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint)).replace("NoneType", "None")


def check_settings(schema: type, values: dict[str, Any], what: str) -> None:
    """Every key of ``values`` must be a field of the dataclass ``schema`` with a value of its type; a typo fails
    with the closest key, a wrong type with the type wanted (settings come from YAML, JSON and ``--set``)."""
    hints = typing.get_type_hints(schema)
    known = {f.name for f in dataclasses.fields(schema)}
    for key, value in values.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UsageError(f"unknown {what} setting '{key}'{hint}")
        if not _fits(value, hints[key]):
            raise UsageError(f"{what} setting {key}={value!r}: expected {_type_name(hints[key])}")


def default_of(schema: type, key: str) -> Any:
    """A dataclass field's default, for the CLI to show: the config is the one place defaults live."""
    spec = next(f for f in dataclasses.fields(schema) if f.name == key)
    return spec.default_factory() if spec.default is dataclasses.MISSING else spec.default

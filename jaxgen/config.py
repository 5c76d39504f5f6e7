"""Experiment settings, declared once: each experiment has a frozen dataclass `Config` (its
defaults are the book's, the `full` preset) and named `PRESETS`; the command line changes any
field with `--set key=value`, checked against the field's declared type.

    @dataclasses.dataclass(frozen=True)
    class Config:
        seed: int = 0
        epochs: int = 30
        widths: tuple[int, ...] = (64, 128, 256)

    PRESETS = {"full": Config(), "quick": Config(epochs=3)}
    override(PRESETS["quick"], ["epochs=2", "widths=16,32"])  # -> Config(epochs=2, widths=(16, 32))

Values: ints, floats, bools (true/false), strings, tuples written `32,64,128`, and `none` for a
field declared `X | None`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any


class ConfigError(ValueError):
    """An unknown key or a value of the wrong type; the message names the key."""


def field_types(config_cls: type) -> dict[str, Any]:
    """{field name: resolved type} of a config dataclass."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def _parse(kind: Any, text: str, key: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):  # X | None
        if text.strip().lower() == "none" and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _parse(inner, text, key)
    if origin is tuple:
        inner = args[0]
        parts = [p for p in text.split(",") if p.strip()]
        return tuple(_parse(inner, p.strip(), key) for p in parts)
    if kind is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ConfigError(f"--set {key}: expected true or false, got {text!r}")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f"--set {key}: expected {kind.__name__}, got {text!r}") from None
    if kind is str:
        return text
    raise ConfigError(f"--set {key}: fields of type {kind} cannot be set from the command line")


def _type_name(kind: Any) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is tuple:
        return f"{_type_name(args[0])},..."
    return "none" if kind is type(None) else getattr(kind, "__name__", str(kind))


def override(config: Any, assignments: Sequence[str]) -> Any:
    """`config` with each `key=value` of `assignments` applied, values parsed by field type.

    Raises:
      ConfigError: an assignment without '=', an unknown key (the message lists the valid
        keys) or a value that does not parse as the field's type.
    """
    kinds = field_types(type(config))
    changes = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        if key not in kinds:
            raise ConfigError(f"--set {key}: unknown key; valid keys: {', '.join(kinds)}")
        changes[key] = _parse(kinds[key], text.strip(), key)
    return dataclasses.replace(config, **changes)


def as_dict(config: Any) -> dict:
    """The config as JSON-ready values (tuples as lists)."""
    def plain(v):
        return [plain(x) for x in v] if isinstance(v, tuple) else v
    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}


def describe(config: Any) -> str:
    """One `key = value  (type)` line per field."""
    kinds = field_types(type(config))
    width = max(map(len, kinds))
    return "\n".join(f"{k:<{width}} = {v!r}  ({_type_name(kinds[k])})"
                     for k, v in dataclasses.asdict(config).items())


def differences(saved: dict, current: dict) -> list[str]:
    """Keys whose values differ between two `as_dict` configs (keys in either)."""
    return sorted(k for k in saved.keys() | current.keys() if saved.get(k) != current.get(k))

"""Frozen dataclass configs loaded from YAML/JSON mappings that reject unknown keys."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

import yaml

from wsovvis.errors import UsageError

C = TypeVar("C")


def from_mapping(cls: type[C], data: dict[str, Any], *, source: str = "config") -> C:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise UsageError naming them."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UsageError(
            f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{source}: {name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise UsageError(f"{source}: {exc}") from exc


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_mapping(hint, value, source=where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except UsageError:
                continue
        raise UsageError(f"{where}: {value!r} is not a {hint}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        items = [_coerce(item, v, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise UsageError(f"{where}: expected a mapping, got {value!r}")
        key_hint, value_hint = typing.get_args(hint) or (Any, Any)
        return {_coerce(key_hint, k, where): _coerce(value_hint, v, f"{where}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type) and not isinstance(value, hint):
        raise UsageError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def load_yaml(cls: type[C], text: str, *, source: str) -> C:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: not valid YAML: {exc}") from exc
    return from_mapping(cls, data, source=source)

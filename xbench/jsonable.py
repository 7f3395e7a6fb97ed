"""Dataclasses that round-trip through plain JSON: ``to_dict`` gives nested dicts and lists,
``from_dict`` rebuilds nested dataclasses from their type hints. Records and measurements
use it so that a file written today can be read back into the same typed objects."""

from __future__ import annotations

import dataclasses
import functools
import types
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T", bound="Jsonable")


class Jsonable:
    """Mixin for dataclasses whose fields are JSON values, other ``Jsonable`` dataclasses,
    or lists/dicts/optionals of those. Unknown keys are an error: migrate old data first."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        hints = _hints(cls)
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TypeError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
        return cls(**{key: _typed(hints[key], value) for key, value in data.items()})


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _plain(value: Any) -> Any:
    if isinstance(value, Jsonable):
        return value.to_dict()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _typed(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        return _typed(options[0], value) if len(options) == 1 else value
    if isinstance(hint, type) and issubclass(hint, Jsonable):
        return hint.from_dict(value)
    if origin is list:
        (item,) = get_args(hint) or (Any,)
        return [_typed(item, v) for v in value]
    if origin is dict:
        _, item = get_args(hint) or (Any, Any)
        return {k: _typed(item, v) for k, v in value.items()}
    return value

"""Dataclasses that round-trip through plain JSON: ``to_dict`` gives nested dicts and lists,
``from_dict`` rebuilds nested dataclasses from their type hints, checking each value
against its hint (a hand-edited or foreign file is a ``TypeError`` naming the field, not a
crash later in a view). Records and measurements use it so that a file written today can be
read back into the same typed objects."""

from __future__ import annotations

import dataclasses
import functools
import types
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T", bound="Jsonable")


class FieldError(TypeError):
    """A value that does not fit its dataclass field; ``path`` is dotted (``a.b.c``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path, self.problem = path, problem


class Jsonable:
    """Mixin for dataclasses whose fields are JSON values, other ``Jsonable`` dataclasses,
    or lists/dicts/optionals of those. Unknown keys, missing fields, nulls in fields that
    are not optional and values of the wrong JSON type are errors: migrate old data first."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        if not isinstance(data, dict):
            raise FieldError("", f"a JSON {_json_type(data)} where an object is expected")
        hints = _hints(cls)
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise FieldError("", f"unknown field(s) {', '.join(unknown)}")
        required = {f.name for f in dataclasses.fields(cls) if _required(f)}
        missing = sorted(required - set(data))
        if missing:
            raise FieldError("", f"missing field(s) {', '.join(missing)}")
        typed = {}
        for key, value in data.items():
            try:
                typed[key] = _typed(hints[key], value)
            except FieldError as error:
                raise FieldError(".".join(filter(None, (key, error.path))), error.problem) from None
            except TypeError as error:
                raise FieldError(key, str(error)) from None
        return cls(**typed)


def _required(f: dataclasses.Field) -> bool:
    no_default = dataclasses.MISSING
    return f.init and f.default is no_default and f.default_factory is no_default


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


# JSON scalars by the type hint that reads them; bool is not a number here.
_SCALARS = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}


def _typed(hint: Any, value: Any) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(hint):
            return None
        options = [a for a in get_args(hint) if a is not type(None)]
        return _typed(options[0], value) if len(options) == 1 else value
    if hint is Any:
        return value
    if value is None:
        raise TypeError("null where a value is required")
    if isinstance(hint, type) and issubclass(hint, Jsonable):
        return hint.from_dict(value)
    if origin is list:
        _expect(value, list, "an array")
        (item,) = get_args(hint) or (Any,)
        return [_typed(item, v) for v in value]
    if origin is dict:
        _expect(value, dict, "an object")
        _, item = get_args(hint) or (Any, Any)
        return {k: _typed(item, v) for k, v in value.items()}
    if hint in _SCALARS:
        allowed = _SCALARS[hint]
        if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
            raise TypeError(f"a JSON {_json_type(value)} where {hint.__name__} is expected")
    return value


def _expect(value: Any, kind: type, name: str) -> None:
    if not isinstance(value, kind):
        raise TypeError(f"a JSON {_json_type(value)} where {name} is expected")


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")

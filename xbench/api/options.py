"""Option dataclasses for plugins: declared once, they become Hydra config nodes and are
validated with messages that name the field and the allowed values.

Declare each field with :func:`option` so it carries its help text and its allowed range::

    @dataclass
    class MyOptions:
        block_size: int = option(64, help="keys per block", min=1)
        kernel: str = option("auto", help="which kernel", choices=("auto", "fast"))
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Union, get_args, get_origin, get_type_hints

from xbench.api.errors import UserError

_SCALARS = (bool, int, float, str)


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    min: float | None = None,
    max: float | None = None,
    choices: Sequence[Any] | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with help text and the range or choices its value must respect."""
    metadata = {"help": help, "min": min, "max": max, "choices": tuple(choices or ())}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def check_options_class(cls: Any) -> str | None:
    """Why ``cls`` cannot serve as an options dataclass, or None when it can."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return f"options must be a dataclass type, got {cls!r}"
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            return f"option {f.name!r} has no default"
        kind = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(kind):
            reason = check_options_class(kind)
            if reason:
                return f"{f.name}: {reason}"
        elif kind not in _SCALARS and get_origin(kind) not in (list, tuple):
            return f"option {f.name!r} has type {kind!r}; use bool, int, float, str or a dataclass"
    return None


def build_options(cls: type, values: Mapping[str, Any] | None, where: str) -> Any:
    """Turn a config mapping into a validated ``cls`` instance.

    Unknown keys and out-of-range values raise :class:`UserError` naming ``where.field``.
    """
    if values is not None and not isinstance(values, Mapping):
        raise UserError(f"{where} must be a group of options, got {values!r}")
    values = dict(values or {})
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UserError(
            f"{where}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value, kind = values[f.name], _unwrap_optional(hints[f.name])
        path = f"{where}.{f.name}"
        if dataclasses.is_dataclass(kind):
            kwargs[f.name] = build_options(kind, value, path)
            continue
        _check_value(path, value, kind, f.metadata, _allows_none(hints[f.name]))
        kwargs[f.name] = list(value) if isinstance(value, (list, tuple)) else value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise UserError(f"{where}: {error}") from None


class OptionRow(NamedTuple):
    """One option as ``xbench plugins -v`` lists it."""

    name: str
    default: Any
    help: str
    allowed: str  # "one of: a, b", "range [1, inf]" or "" when anything of its type goes

    def text(self, prefix: str = "") -> str:
        """``<prefix><name>=<default>: <help> (<allowed>)``, the line ``--help`` and
        ``xbench plugins -v`` show."""
        allowed = f" ({self.allowed})" if self.allowed else ""
        return f"{prefix}{self.name}={self.default!r}: {self.help}{allowed}"


def describe_options(cls: type, prefix: str = "") -> list[OptionRow]:
    """Every option with its default, help and allowed values, nested dataclasses flattened
    into dotted names."""
    rows = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = _unwrap_optional(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if dataclasses.is_dataclass(kind):
            rows += describe_options(kind, f"{prefix}{f.name}.")
        else:
            help_text = f.metadata.get("help", "")
            rows.append(OptionRow(f"{prefix}{f.name}", default, help_text, allowed(f.metadata)))
    return rows


def allowed(meta: Mapping) -> str:
    """What an option's metadata allows, in words: its choices or its range."""
    choices = meta.get("choices") or ()
    if choices:
        return f"one of: {', '.join(map(str, choices))}"
    low, high = meta.get("min"), meta.get("max")
    return "" if low is None and high is None else f"range {_bounds(low, high)}"


def _bounds(low: float | None, high: float | None) -> str:
    return f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"


def _check_value(path: str, value: Any, kind: Any, meta: Mapping, nullable: bool) -> None:
    """A value against its declared type and its metadata; a list's elements one by one
    (``path[i]``), its metadata applying to each of them."""
    if value is None:
        if nullable:
            return
        raise UserError(f"{path} must be set (got null)")
    element = _element_type(kind)
    if element is not None:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{path}={value!r} must be a {_type_name(kind)}")
        item_kind, item_nullable = _unwrap_optional(element), _allows_none(element)
        for i, item in enumerate(value):
            _check_value(f"{path}[{i}]", item, item_kind, meta, item_nullable)
        return
    if isinstance(kind, type) and not _is_instance(value, kind):
        raise UserError(f"{path}={value!r} must be of type {kind.__name__}")
    choices = meta.get("choices") or ()
    if choices and value not in choices:
        raise UserError(f"{path}={value!r} is not allowed; choose {allowed(meta)}")
    low, high = meta.get("min"), meta.get("max")
    if low is None and high is None:
        return
    if isinstance(value, float) and value != value:
        raise UserError(f"{path}=nan is out of range; allowed range is {_bounds(low, high)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise UserError(f"{path}={value!r} is out of range; allowed range is {_bounds(low, high)}")


def _element_type(kind: Any) -> Any:
    """The element type of a list (or ``tuple[X, ...]``) type, ``Any`` when undeclared;
    None for anything that is not a sequence type."""
    if kind in (list, tuple):
        return Any
    origin, args = get_origin(kind), get_args(kind)
    if origin is list:
        return args[0] if args else Any
    if origin is tuple:
        return args[0] if len(args) == 2 and args[1] is Ellipsis else Any
    return None


def _type_name(kind: Any) -> str:
    """``list of list of int``, ``int``: a declared type in words."""
    element = _element_type(kind)
    if element is None:
        return getattr(kind, "__name__", str(kind))
    return "list" if element is Any else f"list of {_type_name(_unwrap_optional(element))}"


def _is_instance(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _allows_none(hint: Any) -> bool:
    return get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)


def _unwrap_optional(hint: Any) -> Any:
    if _allows_none(hint):
        rest = [a for a in get_args(hint) if a is not type(None)]
        return rest[0] if len(rest) == 1 else hint
    return hint

"""Compose the config the way ``xbench run`` will, before Hydra launches anything, so that
Hydra's own errors (a misspelt group choice or key, a bad override) become one line with a
did-you-mean, and every cell of a sweep can be planned before the first one starts."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xbench.api.errors import UserError, did_you_mean, first_line

_NOT_FOUND = re.compile(r"Could not (?:find|load) '([^']+)'")
_NOT_OVERRIDABLE = re.compile(r"Could not override '([^']+)'")


def check_keys(node: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    """One line for the first key of ``node`` that nothing reads, with a did-you-mean."""
    for key in node:
        if key not in known:
            name = f"{where}.{key}" if where else key
            hint = did_you_mean(key, known) or f" Known keys: {', '.join(known)}."
            raise UserError(f"unknown key {name!r}: nothing reads it.{hint}")


def compose_run_config(
    overrides: Sequence[str], config_name: str, config_module: str = "xbench_configs"
) -> dict[str, Any]:
    """The resolved config (without Hydra's node); any Hydra or OmegaConf error is a
    one-line :class:`UserError`."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_module(config_module=config_module, version_base="1.3"):
            config = compose(config_name=config_name, overrides=list(overrides))
            return OmegaConf.to_container(config, resolve=True)
    except (HydraException, OmegaConfBaseException) as error:
        raise hydra_error(error, overrides, config_name, config_module) from None


def hydra_error(
    error: Exception, overrides: Sequence[str], config_name: str, config_module: str
) -> UserError:
    """Hydra's multi-line message as one line naming the override and the allowed values."""
    from hydra.errors import MissingConfigException, OverrideParseException

    message = str(error)
    if isinstance(error, OverrideParseException):
        return UserError(f"invalid override {error.override!r}: {first_line(error.message)}")
    found = _NOT_FOUND.search(message)
    if isinstance(error, MissingConfigException) and found and error.options:
        group, _, name = found.group(1).rpartition("/")
        options = sorted(error.options)
        return UserError(
            f"unknown {group} {name!r}; choose one of: {', '.join(options)}."
            + did_you_mean(name, options)
        )
    found = _NOT_OVERRIDABLE.search(message)
    if found:
        return _unknown_key(found.group(1), overrides, config_name, config_module)
    if message.startswith("Ambiguous value"):
        return UserError(f"{first_line(message)}: sweep it with -m, or give a list as key=[a,b]")
    return UserError(first_line(message) or repr(error))


def _unknown_key(
    key: str, overrides: Sequence[str], config_name: str, config_module: str
) -> UserError:
    """``tsk=qa``: the key is named with the keys its parent node has."""
    parent, _, leaf = key.rpartition(".")
    rest = [o for o in overrides if _key(o) != key]
    try:
        node: Any = compose_run_config(rest, config_name, config_module)
        for part in filter(None, parent.split(".")):
            node = node[part]
        known = sorted(node) if isinstance(node, dict) else []
    except (UserError, KeyError, TypeError):
        known = []
    where = f" in {parent}" if parent else ""
    hint = did_you_mean(leaf, known) or (f" Known keys: {', '.join(known)}." if known else "")
    return UserError(
        f"unknown key {key!r}{where} (nothing reads it; '+{key}=...' adds a key only where "
        f"one is read).{hint}"
    )


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def sweep_cells(overrides: Sequence[str]) -> list[list[str]]:
    """The cells that cover every swept value at least once: the first cell (each sweep
    at its first value), then each other value of each sweep with the rest at their first.
    Planning these finds a bad value without composing the whole product."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as error:
        raise UserError(first_line(error)) from None
    choices = []
    for text, override in zip(overrides, parsed, strict=True):
        if override.is_sweep_override():
            key = override.get_key_element()
            values = [f"{key}={value}" for value in override.sweep_string_iterator()]
            if not values:
                raise UserError(f"{text}: the sweep has no values")
            choices.append(values)
        else:
            choices.append([text])
    first = [values[0] for values in choices]
    cells = [first]
    for i, values in enumerate(choices):
        cells += [[*first[:i], value, *first[i + 1 :]] for value in values[1:]]
    return cells


def check_output_root(root: str | Path) -> None:
    """The folder every run and sweep writes under must be one xbench can create and write:
    a path through a regular file, or a read-only location, is one line before anything
    runs (Hydra would otherwise fail with a traceback while making the run folder)."""
    path = Path(root).expanduser().absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    advice = "set output_root (or XBENCH_OUTPUT_DIR) to a writable folder"
    if not existing.is_dir():
        raise UserError(f"output_root={root}: {existing} is not a folder; {advice}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"output_root={root}: {existing} is not writable; {advice}")

"""Hydra configuration: plugin option dataclasses become config nodes, and names given on
the command line are checked against the registry before Hydra composes anything."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from xbench.api.errors import UserError, first_line
from xbench.config.settings import PRESET_SETTINGS, RUN_SETTINGS
from xbench.registry import Registry

CONFIG_PATH = "pkg://xbench_configs"
CONFIG_NAME = "xbench"
PLUGIN_GROUPS = ("backend", "task")
SETTINGS_GROUP = "settings"
OUTPUT_ENV = "XBENCH_OUTPUT_DIR"


def default_output_root() -> Path:
    """Where runs go unless ``output_root`` says otherwise (as in configs/xbench.yaml)."""
    return Path(os.environ.get(OUTPUT_ENV) or "xbench_runs")


def expand_seeds(args: Sequence[str]) -> list[str]:
    """``seeds=N`` becomes a sweep over N seeds, ``seed=range(S, S+N)`` (S: a ``seed=``
    given with it, else 0), and the run becomes a multirun: each seed is its own cell."""
    args = list(args)
    given = [a for a in args if a.startswith("seeds=")]
    if not given:
        return args
    count = given[-1].split("=", 1)[1]
    if not count.isdigit() or int(count) < 1:
        raise UserError(f"seeds={count!r} must be a whole number >= 1 (runs per cell)")
    starts = [a for a in args if a.startswith("seed=")]
    start = starts[-1].split("=", 1)[1] if starts else "0"
    if not start.lstrip("-").isdigit():
        raise UserError(f"seeds=N needs one starting seed=S, not seed={start!r}")
    kept = [a for a in args if a not in given and a not in starts]
    kept.append(f"seed=range({start},{int(start) + int(count)})")
    return kept if {"-m", "--multirun"} & set(kept) else ["-m", *kept]


def options_node(name: str, options_cls: type) -> dict:
    """The config node of a plugin: its name plus its options' defaults."""
    defaults = dataclasses.asdict(options_cls())
    return {"name": name, **defaults}


def store_settings(settings: Mapping[str, type]) -> None:
    """Store each settings dataclass's defaults as the node ``settings/<name>``, which a
    primary config places at ``<name>`` (``- settings/model@model``) and presets override."""
    store = ConfigStore.instance()
    for name, cls in settings.items():
        store.store(group=SETTINGS_GROUP, name=name, node=dataclasses.asdict(cls()))


def store_plugin_configs(registry: Registry) -> None:
    """Make every registered backend and task selectable as ``backend=NAME`` / ``task=NAME``
    (and store the run settings' nodes, which ``configs/xbench.yaml`` builds on)."""
    store_settings({**RUN_SETTINGS, **PRESET_SETTINGS})
    store = ConfigStore.instance()
    for group, table in (("backend", registry.backends), ("task", registry.tasks)):
        for name, entry in table.items():
            store.store(group=group, name=name, node=options_node(name, entry.spec.options))


def check_plugin_choices(overrides: Sequence[str], registry: Registry) -> None:
    """Reject unknown ``backend=``/``task=`` values (sweeps included) with the installed
    names, before Hydra composes or any data is built."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as error:
        raise UserError(f"invalid override: {first_line(error)}") from None
    lookups = {"backend": registry.backend, "task": registry.task}
    for override in parsed:
        group = override.key_or_group
        if group not in PLUGIN_GROUPS or override.is_delete():
            continue
        if override.is_sweep_override():
            values = list(override.sweep_string_iterator())
        else:
            values = [override.get_value_element_as_str()]
        for value in values:
            lookups[group](value)

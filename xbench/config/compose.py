"""Hydra configuration: plugin option dataclasses become config nodes, and names given on
the command line are checked against the registry before Hydra composes anything."""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf

from xbench.api.errors import UserError, first_line
from xbench.config.settings import PRESET_SETTINGS, RUN_SETTINGS
from xbench.registry import Registry

CONFIG_PATH = "pkg://xbench_configs"
CONFIG_NAME = "xbench"
PLUGIN_GROUPS = ("backend", "task")
SETTINGS_GROUP = "settings"
OUTPUT_ENV = "XBENCH_OUTPUT_DIR"
STAMP_RESOLVER = "xbench.stamp"


def default_output_root() -> Path:
    """Where runs go unless ``output_root`` says otherwise (as in configs/xbench.yaml)."""
    return Path(os.environ.get(OUTPUT_ENV) or "xbench_runs")


def unique_stamp(pattern: str) -> str:
    """Now as ``pattern`` (strftime), then milliseconds and a random suffix: folders of runs
    and sweeps started at the same moment, in any number of processes, never collide."""
    now = datetime.now()
    return f"{now.strftime(pattern)}.{now.microsecond // 1000:03d}_{secrets.token_hex(3)}"


def register_resolvers() -> None:
    """``${xbench.stamp:PATTERN}``, the run and sweep folders of configs/xbench.yaml. Cached
    per config like Hydra's ``now``: every read of one config gives one folder, and Hydra
    copies the cache into each sweep cell's config (launcher workers included)."""
    OmegaConf.register_new_resolver(STAMP_RESOLVER, unique_stamp, use_cache=True, replace=True)


register_resolvers()  # on import: wherever a config is composed, launcher workers included


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

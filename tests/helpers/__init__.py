"""Shared test helpers: composing xbench's Hydra config without the CLI (this module),
small real-format image folders (``helpers.images``), run records (``helpers.records``)."""

from __future__ import annotations

from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from xbench.config.compose import CONFIG_NAME, store_plugin_configs
from xbench.registry import Registry, get_registry


def composed_config(overrides: list[str], registry: Registry | None = None) -> dict:
    """The resolved config ``xbench run`` would use (minus Hydra's own node)."""
    store_plugin_configs(registry or get_registry())
    with initialize_config_module(config_module="xbench_configs", version_base="1.3"):
        cfg = compose(CONFIG_NAME, overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


# Options that make the embedded QA data and model small enough for a few seconds' run.
SMALL_QA = [
    "task.data.train_size=128",
    "task.data.val_size=16",
    "task.data.test_size=16",
    "task.batch_size=16",
    "task.eval_batch_size=16",
]

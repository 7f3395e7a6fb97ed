"""The ``tier`` switch: one override selects a source-length tier, its generic settings and
the task's own preset for it, and the plan and record name the tier."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import xbench_configs
from xbench.api.errors import UserError
from xbench.config.compose import store_plugin_configs
from xbench.registry import get_registry
from xbench.run.plan import plan_run

TIERS = sorted(p.stem for p in (Path(xbench_configs.__file__).parent / "tier").glob("*.yaml"))


@pytest.fixture(scope="module")
def registry():
    registry = get_registry()
    store_plugin_configs(registry)
    return registry


def composed(overrides):
    with initialize_config_module(config_module="xbench_configs", version_base="1.3"):
        return OmegaConf.to_container(compose("xbench", overrides=overrides), resolve=True)


def test_the_default_tier_keeps_full_encoder_attention(registry):
    config = composed([])

    assert config["tier"] == "default"
    assert config["model"]["encoder_window"] == 0
    assert plan_run(config, registry).tier == "default"


@pytest.mark.parametrize("tier", [t for t in TIERS if t != "default"])
def test_a_long_tier_bands_the_encoder_and_names_itself(registry, tier):
    config = composed([f"tier={tier}"])

    assert config["tier"] == tier
    assert config["model"]["encoder_window"] > 0
    assert plan_run(config, registry).tier == tier


def test_command_line_overrides_win_over_the_tier(registry):
    config = composed(["tier=long", "model.encoder_window=8"])

    assert config["model"]["encoder_window"] == 8


def test_a_bad_tier_value_is_one_line(registry):
    config = composed([])
    config["tier"] = "long tier!"

    with pytest.raises(UserError, match="tier='long tier!' must be a tier name"):
        plan_run(config, registry)

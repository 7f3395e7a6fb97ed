"""One source of defaults: the settings dataclasses hold every default of the model,
optimiser, heatmap and measurement nodes (and BenchSettings those of ``xbench bench``); the
YAML configs only select and override them."""

from __future__ import annotations

import dataclasses
from importlib.resources import files

import pytest
from helpers import composed_config
from omegaconf import OmegaConf

from xbench.bench.command import compose as compose_bench
from xbench.bench.grid import BenchSettings
from xbench.config.settings import RUN_SETTINGS, MeasureSettings, ModelSettings
from xbench.registry import get_registry
from xbench.run.plan import plan_run

MODELS = ("tiny", "small", "base")
CONFIGS = files("xbench_configs")


def _yaml(path: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(str(CONFIGS / path)))


def _settings_of(node: dict) -> dict:
    return {k: v for k, v in node.items() if k != "name"}


def test_default_config_holds_the_dataclass_defaults():
    config = composed_config([])

    for name, cls in RUN_SETTINGS.items():
        assert _settings_of(config[name]) == dataclasses.asdict(cls()), name
    assert config["model"]["name"] == "tiny"
    plan = plan_run(config, get_registry())
    assert (plan.model, plan.optim, plan.heatmaps, plan.measure, plan.eval) == tuple(
        cls() for cls in RUN_SETTINGS.values()
    )


def test_default_values_are_those_of_the_previous_yaml():
    """The default runs keep their figures: the values today's YAML gave them."""
    config = composed_config([])

    assert config["optim"] == {
        "lr": 3e-3,
        "weight_decay": 0.01,
        "warmup_steps": 100,
        "label_smoothing": 0.0,
    }
    assert config["measure"] == {"warmup": 3, "repeats": 20}
    assert config["heatmaps"] == {"enabled": True, "examples": 4}
    model = {"d_model": 64, "heads": 2, "encoder_layers": 2, "decoder_layers": 2}
    assert config["model"] == {
        **model,
        "ffn_dim": 256,
        "dropout": 0.0,
        "conv_kernel": 4,
        "encoder_window": 0,
    } | {"name": "tiny"}


def test_the_primary_config_does_not_repeat_the_settings_defaults():
    primary = _yaml("xbench.yaml")

    assert not set(RUN_SETTINGS) & set(primary)
    for name in RUN_SETTINGS:
        assert f"settings/{name}@{name}" in primary["defaults"]


@pytest.mark.parametrize("model", MODELS)
def test_model_presets_only_override_model_settings(model):
    preset = _settings_of(_yaml(f"model/{model}.yaml"))
    composed = _settings_of(composed_config([f"model={model}"])["model"])

    fields = {f.name for f in dataclasses.fields(ModelSettings)}
    assert set(preset) <= fields
    assert composed == dataclasses.asdict(ModelSettings()) | preset
    for key, value in preset.items():
        assert value != getattr(ModelSettings(), key), f"{model}.yaml repeats the default {key}"


@pytest.mark.parametrize("field", dataclasses.fields(ModelSettings), ids=lambda f: f.name)
def test_every_model_setting_is_overridable_from_the_command_line(field):
    value = {"dropout": 0.25, "heads": 4, "conv_kernel": 0}.get(field.name, 16)

    plan = plan_run(composed_config([f"model.{field.name}={value}"]), get_registry())

    assert getattr(plan.model, field.name) == value


def test_conv_kernel_zero_removes_the_convolution():
    plan = plan_run(composed_config(["model.conv_kernel=0", "model=small"]), get_registry())

    assert plan.model.conv_kernel == 0 and plan.model.d_model == 256


def test_measure_overrides_reach_the_plan():
    plan = plan_run(composed_config(["measure.repeats=2", "measure.warmup=0"]), get_registry())

    assert plan.measure == MeasureSettings(repeats=2, warmup=0)


# xbench bench: its primary config is YAML too, its defaults are BenchSettings'.


def test_bench_primary_is_yaml_without_the_bench_defaults():
    primary = _yaml("xbench_bench.yaml")

    assert "bench" not in primary and "backends" not in primary
    assert "settings/bench@bench" in primary["defaults"]
    assert {"bench": "quick"} in primary["defaults"]


def test_bench_settings_come_from_the_dataclass_under_the_preset():
    registry = get_registry()
    preset = _yaml("bench/quick.yaml")["bench"]

    config = compose_bench(["logger=none", "bench.seed=7"], registry)

    assert config["bench"] == dataclasses.asdict(BenchSettings()) | preset | {"seed": 7}
    assert config["backends"] == sorted(registry.backends)
    assert set(config["backend"]) == set(registry.backends)
    assert config["threads"] is None and config["output_dir"].endswith("_quick")

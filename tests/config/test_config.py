"""Hydra configuration: plugin nodes compose with the YAML groups, names are checked against
the registry, and a composed config plans into a validated run."""

from __future__ import annotations

import dataclasses

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from xbench.api.errors import UserError
from xbench.config.compose import check_plugin_choices, store_plugin_configs
from xbench.config.settings import ModelSettings
from xbench.registry import get_registry
from xbench.run.plan import RunPlan, plan_run
from xbench_plugins.flash import FlashOptions
from xbench_tasks.qa import QAOptions

MODELS = ("tiny", "small", "base")


@pytest.fixture(scope="module")
def registry():
    registry = get_registry()
    store_plugin_configs(registry)
    return registry


@pytest.fixture
def compose_config(registry):
    """compose(overrides) → the resolved plain-dict config, as the runner receives it."""
    with initialize_config_module(config_module="xbench_configs", version_base="1.3"):

        def run(overrides=()):
            config = compose("xbench", overrides=list(overrides))
            return OmegaConf.to_container(config, resolve=True)

        yield run


def test_default_composition(compose_config):
    config = compose_config()

    assert config["backend"] == {"name": "flash", **dataclasses.asdict(FlashOptions())}
    assert config["task"]["name"] == "qa"
    assert config["task"]["data"] == dataclasses.asdict(QAOptions())["data"]
    assert config["model"]["name"] == "tiny"
    assert "hydra" not in config


def test_other_groups_compose(compose_config):
    config = compose_config(["backend=naive", "model=small", "trainer=debug", "logger=none"])

    assert config["backend"] == {"name": "naive"}
    assert config["model"]["name"] == "small"
    assert config["trainer"]["fast_dev_run"] is True
    assert config["trainer"]["accelerator"] == "cpu"  # inherited from trainer/cpu
    assert config["logger"] == {"name": "none"}


def test_backend_option_override(compose_config, registry):
    config = compose_config(["backend.kernel=math"])

    assert config["backend"]["kernel"] == "math"
    assert plan_run(config, registry).backend_options == FlashOptions(kernel="math")


@pytest.mark.parametrize("model", MODELS)
def test_model_presets_have_whole_head_dims(compose_config, registry, model):
    config = compose_config([f"model={model}"])

    assert config["model"]["name"] == model
    assert config["model"]["d_model"] % config["model"]["heads"] == 0
    assert (
        plan_run(config, registry).model.head_dim * config["model"]["heads"]
        == (config["model"]["d_model"])
    )


def test_model_presets_grow(compose_config):
    sizes = [compose_config([f"model={m}"])["model"]["d_model"] for m in MODELS]

    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


@pytest.mark.parametrize(
    "overrides",
    [
        ["backend=nope"],
        ["backend=naive,nope"],
        ["backend=choice(flash,nope)"],
        ["task=qa", "backend=nope"],
    ],
)
def test_unknown_backend_lists_the_installed_ones(registry, overrides):
    with pytest.raises(UserError) as info:
        check_plugin_choices(overrides, registry)

    message = str(info.value)
    assert "unknown backend 'nope'" in message
    for name in ("flash", "naive", "uniform"):
        assert name in message


def test_unknown_task_suggests_a_close_name(registry):
    with pytest.raises(UserError, match=r"unknown task 'qaa'; installed tasks: .*\bqa\b.*'qa'"):
        check_plugin_choices(["task=qaa"], registry)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["backend=naive,flash,uniform", "task=qa"],
        ["backend.kernel=math"],
        ["model=base", "seed=3"],
        ["~logger"],
    ],
)
def test_known_choices_pass(registry, overrides):
    assert check_plugin_choices(overrides, registry) is None


def test_malformed_override_is_a_user_error(registry):
    with pytest.raises(UserError, match="invalid override"):
        check_plugin_choices(["backend=naive,"], registry)


def test_plan_run_of_the_default_config(compose_config, registry):
    config = compose_config()

    plan = plan_run(config, registry)

    assert isinstance(plan, RunPlan)
    assert plan.backend.name == "flash"
    assert plan.backend_options == FlashOptions()
    assert plan.task.name == "qa"
    assert plan.task_options == QAOptions()
    assert plan.model == ModelSettings(**{k: v for k, v in config["model"].items() if k != "name"})
    assert plan.optim.lr == config["optim"]["lr"]
    assert plan.config is config


def test_plan_run_applies_nested_task_overrides(compose_config, registry):
    plan = plan_run(compose_config(["task.data.num_facts=20", "task.batch_size=16"]), registry)

    assert plan.task_options.data.num_facts == 20
    assert plan.task_options.batch_size == 16


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["task.data.num_facts=-1"], "task.data.num_facts=-1 is out of range"),
        (["task.batch_size=0"], "task.batch_size=0 is out of range"),
        (["backend.kernel=nope"], "backend.kernel='nope' is not allowed"),
        (["task.data.source=web"], "task.data.source='web' is not allowed"),
        (["model.heads=3"], "must be divisible by heads=3"),
        (["optim.lr=fast"], "optim.lr='fast' must be of type float"),
        (["task.data=5"], "task.data"),
        (["measure.repeats=0"], "measure.repeats=0 is out of range"),
        (["measure.repeats=big"], "measure.repeats='big' must be of type int"),
        (["heatmaps.examples=65"], "heatmaps.examples=65 is out of range"),
        (["+measure.reps=3"], "measure: unknown option(s) reps"),
    ],
)
def test_plan_run_rejects_bad_values_naming_the_field(
    compose_config, registry, overrides, fragment
):
    config = compose_config(overrides)

    with pytest.raises(UserError) as info:
        plan_run(config, registry)

    assert fragment in str(info.value)

"""The checks ``xbench run`` makes before launching: sweep cells, Hydra errors as one line,
trainer settings and the machine's devices."""

from __future__ import annotations

import pytest
import torch
from helpers import composed_config

from xbench.api.errors import UserError
from xbench.config.compose import store_plugin_configs
from xbench.config.preflight import compose_run_config, sweep_cells
from xbench.config.settings import TrainerSettings
from xbench.registry import get_registry
from xbench.run.devices import check_devices
from xbench.run.plan import plan_run


def test_sweep_cells_cover_every_swept_value_once_without_the_product():
    cells = sweep_cells(["a=1,2,3", "b=x,y", "c=0"])

    assert cells == [
        ["a=1", "b=x", "c=0"],
        ["a=2", "b=x", "c=0"],
        ["a=3", "b=x", "c=0"],
        ["a=1", "b=y", "c=0"],
    ]


def test_a_missing_group_choice_names_the_options():
    store_plugin_configs(get_registry())

    with pytest.raises(UserError, match=r"choose one of: cpu, debug, gpu\. Did you mean 'debug'"):
        compose_run_config(["trainer=debg"], "xbench")


def test_the_trainer_node_holds_the_dataclass_defaults_and_plans():
    config = composed_config(["trainer=debug"])

    plan = plan_run(config, get_registry())

    assert plan.trainer == TrainerSettings()
    assert config["trainer"]["fast_dev_run"] is True  # a Lightning keyword passes through


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_steps=0", r"trainer.max_steps=0 is out of range"),
        ("trainer.log_every_n_steps=1.5", r"must be of type int"),
        ("trainer.precision=15", r"trainer.precision=15 is not allowed"),
        ("trainer.val_check_interval=1.5", r"val_check_interval=1.5 must be"),
        ("trainer.devices=-2", r"devices=-2 must be"),
        ("+trainer.callbacks=1", r"trainer.callbacks is set by xbench"),
        ("+trainer.max_epoch=3", r"Did you mean 'max_epochs'"),
        ("+logger.projetc=x", r"Did you mean 'project'"),
        ("seed=1.5", r"seed=1.5 must be a whole number"),
    ],
)
def test_bad_trainer_logger_and_top_level_values_are_refused(override, message):
    with pytest.raises(UserError, match=message):
        plan_run(composed_config([override]), get_registry())


def test_auto_and_cpu_always_pass_and_a_missing_cuda_names_what_there_is():
    check_devices(TrainerSettings(accelerator="auto", devices="auto"))
    check_devices(TrainerSettings(accelerator="cpu", devices=4))
    if torch.cuda.is_available():
        too_many = TrainerSettings(accelerator="gpu", devices=torch.cuda.device_count() + 1)
        with pytest.raises(UserError, match="more gpu devices than"):
            check_devices(too_many)
    else:
        with pytest.raises(UserError, match=r"available: cpu \(\d+ cores\)"):
            check_devices(TrainerSettings(accelerator="gpu"))

"""A run plan: the composed config checked and every name resolved, before any data is
built, so a bad value costs nothing and resume can decide from the plan alone."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from xbench.api.backend import BackendSpec
from xbench.api.errors import UserError
from xbench.api.options import build_options
from xbench.api.task import TaskSpec
from xbench.config.settings import HeatmapSettings, MeasureSettings, ModelSettings, OptimSettings
from xbench.integrations.wandb import check_logger_settings
from xbench.records.result import Revision
from xbench.registry import Registry
from xbench.run.revision import run_revision


@dataclass
class RunPlan:
    """A validated run: every name resolved, every option checked."""

    backend: BackendSpec
    backend_options: Any
    task: TaskSpec
    task_options: Any
    model: ModelSettings
    optim: OptimSettings
    heatmaps: HeatmapSettings
    measure: MeasureSettings
    config: dict[str, Any]

    @functools.cached_property
    def revision(self) -> Revision:
        """What code and inputs this run uses (hashed once: resume and the record share it)."""
        return run_revision(self.backend, self.task, self.task_options)


def plan_run(config: dict[str, Any], registry: Registry) -> RunPlan:
    """Check the composed config; raises :class:`UserError` before any data is built."""
    backend_cfg, task_cfg = dict(config["backend"]), dict(config["task"])
    backend = registry.backend(backend_cfg.pop("name"))
    task = registry.task(task_cfg.pop("name"))
    model_cfg = {k: v for k, v in config["model"].items() if k != "name"}
    check_logger_settings(config.get("logger") or {})
    _check_resume(config.get("resume", "auto"))
    return RunPlan(
        backend=backend,
        backend_options=build_options(backend.options, backend_cfg, "backend"),
        task=task,
        task_options=build_options(task.options, task_cfg, "task"),
        model=build_options(ModelSettings, model_cfg, "model"),
        optim=build_options(OptimSettings, config.get("optim"), "optim"),
        heatmaps=build_options(HeatmapSettings, config.get("heatmaps"), "heatmaps"),
        measure=build_options(MeasureSettings, config.get("measure"), "measure"),
        config=config,
    )


def _check_resume(value: Any) -> None:
    """``auto``, ``true`` or ``false`` only: ``1`` or ``0`` equal a bool but are not one."""
    if value != "auto" and not isinstance(value, bool):
        raise UserError(f"resume={value!r} is not allowed; choose one of: auto, true, false")

"""A run plan: the composed config checked and every name resolved, before any data is
built, so a bad value costs nothing and resume can decide from the plan alone."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass, field
from typing import Any

from xbench.api.backend import BackendSpec
from xbench.api.errors import UserError, did_you_mean
from xbench.api.options import build_options
from xbench.api.task import TaskSpec
from xbench.config.preflight import check_keys
from xbench.config.settings import (
    EvalSettings,
    HeatmapSettings,
    MeasureSettings,
    ModelSettings,
    OptimSettings,
    TrainerSettings,
    is_whole_number,
)
from xbench.integrations.wandb import check_logger_settings
from xbench.records.result import Revision
from xbench.registry import Registry
from xbench.run.devices import check_devices
from xbench.run.hf_model import HFModelPlan, plan_hf_model, with_model_folder
from xbench.run.revision import run_revision

# Every top-level key a run reads (configs/xbench.yaml); anything else is a typo or a
# ``+key=`` that nothing would read.
TOP_LEVEL_KEYS = (
    "backend", "task", "model", "trainer", "logger", "optim", "measure", "heatmaps",
    "seed", "threads", "resume", "output_root", "tier", "eval",
)  # fmt: skip
# The keys each logger reads (configs/logger/*.yaml).
LOGGER_KEYS = {
    "wandb": ("name", "project", "entity", "group", "tags", "mode"),
    "none": ("name",),
}
# Trainer keywords the runner passes itself: set through xbench's own settings instead.
RUNNER_SETS = {
    "logger": "logger=wandb|none",
    "callbacks": "heatmaps.*",
    "default_root_dir": "output_root",
    "enable_model_summary": "nothing (xbench prints its own summary)",
}


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
    trainer: TrainerSettings
    config: dict[str, Any]
    tier: str = "default"
    eval: EvalSettings = field(default_factory=EvalSettings)
    trained_with: BackendSpec | None = None  # eval.trained_with, resolved
    hf: HFModelPlan | None = None  # model=hf: a Hugging Face model, evaluated only

    @functools.cached_property
    def revision(self) -> Revision:
        """What code and inputs this run uses (hashed once: resume and the record share it)."""
        revision = run_revision(self.backend, self.task, self.task_options)
        return revision if self.hf is None else with_model_folder(revision, self.hf)


def plan_run(config: dict[str, Any], registry: Registry) -> RunPlan:
    """Check the composed config; raises :class:`UserError` before any data is built."""
    check_keys(config, TOP_LEVEL_KEYS, "")
    backend_cfg, task_cfg = dict(config["backend"]), dict(config["task"])
    backend = registry.backend(backend_cfg.pop("name"))
    task = registry.task(task_cfg.pop("name"))
    model_cfg = {k: v for k, v in config["model"].items() if k != "name"}
    _check_logger(config.get("logger") or {})
    _check_resume(config.get("resume", "auto"))
    _check_seed_and_threads(config.get("seed", 0), config.get("threads"))
    tier = _check_tier(config.get("tier", "default"))
    evaluation = build_options(EvalSettings, config.get("eval"), "eval")
    trained_with = _trained_with(evaluation, registry)
    trainer = trainer_settings(config.get("trainer") or {})
    check_devices(trainer)
    backend_options = build_options(backend.options, backend_cfg, "backend")
    task_options = build_options(task.options, task_cfg, "task")
    hf = None
    if config["model"].get("name") == "hf":
        if trained_with is not None:
            raise UserError(
                "eval.trained_with trains xbench's own model; model=hf evaluates a Hugging "
                "Face model as it is (drop eval.trained_with)"
            )
        hf, model_cfg = plan_hf_model(model_cfg, task, task_options), {}
    return RunPlan(
        backend=backend,
        backend_options=backend_options,
        task=task,
        task_options=task_options,
        model=build_options(ModelSettings, model_cfg, "model"),
        optim=build_options(OptimSettings, config.get("optim"), "optim"),
        heatmaps=build_options(HeatmapSettings, config.get("heatmaps"), "heatmaps"),
        measure=build_options(MeasureSettings, config.get("measure"), "measure"),
        trainer=trainer,
        config=config,
        tier=tier,
        eval=evaluation,
        trained_with=trained_with,
        hf=hf,
    )


def _check_resume(value: Any) -> None:
    """``auto``, ``true`` or ``false`` only: ``1`` or ``0`` equal a bool but are not one."""
    if value != "auto" and not isinstance(value, bool):
        raise UserError(f"resume={value!r} is not allowed; choose one of: auto, true, false")


def trainer_settings(node: dict[str, Any]) -> TrainerSettings:
    """The checked trainer settings; other keys must be ``lightning.Trainer`` keywords
    (their values Lightning checks) and not ones the runner sets itself."""
    import lightning

    fields = {f.name for f in dataclasses.fields(TrainerSettings)}
    keywords = set(inspect.signature(lightning.Trainer).parameters) - {"self"}
    for key in node:
        if key in RUNNER_SETS:
            raise UserError(f"trainer.{key} is set by xbench; use {RUNNER_SETS[key]} instead")
        if key not in fields and key not in keywords:
            hint = did_you_mean(key, sorted(fields | keywords))
            raise UserError(f"unknown key 'trainer.{key}': not a lightning.Trainer keyword.{hint}")
    settings = build_options(TrainerSettings, {k: node[k] for k in node if k in fields}, "trainer")
    _check_strategy(settings.strategy)
    return settings


def _check_strategy(name: str) -> None:
    from lightning.pytorch.strategies import StrategyRegistry

    known = ["auto", *StrategyRegistry.available_strategies()]
    if name not in known:
        raise UserError(
            f"trainer.strategy={name!r} is not one of Lightning's strategies."
            + (did_you_mean(name, known) or f" Known: {', '.join(known)}.")
        )


def _check_logger(settings: dict[str, Any]) -> None:
    check_logger_settings(settings)
    name = settings.get("name", "none")
    check_keys(settings, LOGGER_KEYS[name], "logger")
    if name == "wandb":
        for key in ("project", "entity", "group"):
            if settings.get(key) is not None and not isinstance(settings[key], str):
                raise UserError(f"logger.{key}={settings[key]!r} must be text or null")
        tags = settings.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise UserError(f"logger.tags={tags!r} must be a list of text")


def _trained_with(settings: EvalSettings, registry: Registry) -> BackendSpec | None:
    """The backend swap-in weights are trained with; fine-tuning needs a swap to adapt to."""
    if settings.trained_with is None:
        if settings.finetune_steps:
            raise UserError(
                f"eval.finetune_steps={settings.finetune_steps} adapts a swapped-in backend; "
                "set eval.trained_with=BACKEND as well"
            )
        return None
    try:
        return registry.backend(settings.trained_with)
    except UserError as error:
        raise UserError(f"eval.trained_with: {error}") from None


def _check_tier(value: Any) -> str:
    """The tier's name (configs/tier/*.yaml sets it): a plain word, as boards group by it."""
    if not isinstance(value, str) or not value.replace("_", "").isalnum():
        raise UserError(f"tier={value!r} must be a tier name such as default, long or xl")
    return value


def _check_seed_and_threads(seed: Any, threads: Any) -> None:
    """Whole numbers as given: ``seed=1.5`` or ``threads=2.5`` is an error, not a rounding."""
    if not is_whole_number(seed):
        raise UserError(f"seed={seed!r} must be a whole number")
    if threads is not None and not (is_whole_number(threads) and threads >= 1):
        raise UserError(f"threads={threads!r} must be a whole number >= 1 or null")

"""One cell of the benchmark: validate the config, build task and backend, train, test,
measure, and write the run record (always — a failed run is a typed record too)."""

from __future__ import annotations

import functools
import logging
import shutil
import traceback
import uuid
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import lightning as L
import torch

from xbench import __version__
from xbench.api.errors import UserError
from xbench.api.task import Task
from xbench.config.settings import ModelSettings
from xbench.measure.memory import is_out_of_memory, run_peak_memory
from xbench.records.environment import environment, git_sha, machine_load
from xbench.records.result import (
    RESULT_FILE,
    BackendInfo,
    Efficiency,
    Environment,
    MachineLoad,
    ModelInfo,
    Quality,
    RunResult,
    Sample,
    TaskFacts,
    config_hash,
)
from xbench.run.callbacks import StepProgressBar, StepTimer
from xbench.run.fidelity import batches_tested, fidelity_on_test_set
from xbench.run.heatmaps import heatmap_callbacks
from xbench.run.model import EncoderDecoder
from xbench.run.module import DivergedError, Seq2SeqModule
from xbench.run.phases import measure_phases, with_shares
from xbench.run.plan import RunPlan
from xbench.run.sidecar import write_examples
from xbench.run.swap import shared_state, swap_in

_QUIET = [".*does not have many workers.*", ".*LeafSpec.*", ".*number of training batches.*"]
# Lightning's info lines at Trainer start ("GPU available: ...", the litlogger tip) carry
# nothing for an xbench user: the header line says what runs where. Its other info lines
# (validation samples go through the same logger) and every warning still show.
_LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)
_CHATTER = ("GPU available:", "TPU available:", "HPU available:", "💡 Tip:")


class _DropChatter(logging.Filter):
    """Drops Lightning's start-up lines that :data:`_CHATTER` names, keeps the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().lstrip().startswith(_CHATTER)


def _quiet_lightning() -> None:
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropChatter) for f in logger.filters):
            logger.addFilter(_DropChatter())


class RecordNotWritten(Exception):
    """The cell ended but its record could not be written (full disk, read-only folder…);
    carries the result so that its figures can still be shown."""

    def __init__(self, result: RunResult, path: Path, error: OSError) -> None:
        reason = error.strerror or error
        super().__init__(f"the run record could not be written to {path}: {reason}")
        self.result, self.path = result, path


def execute(plan: RunPlan, run_dir: Path) -> RunResult:
    """Train and evaluate one backend × task cell; the record is written even on failure.

    Raises :class:`RecordNotWritten` (after training, with the result) when the write fails.
    """
    config = plan.config
    result = RunResult(
        run_id=f"{plan.backend.name}-{plan.task.name}-{uuid.uuid4().hex[:8]}",
        config_hash=config_hash(config),
        xbench_version=__version__,
        git_sha=git_sha(),
        backend=BackendInfo(
            name=plan.backend.name,
            exact=plan.backend.exact,
            options=asdict(plan.backend_options),
            description=plan.backend.description,
        ),
        task=TaskFacts(
            name=plan.task.name,
            options=asdict(plan.task_options),
            description=plan.task.description,
        ),
        model=ModelInfo(
            name=config["model"].get("name"),
            settings=asdict(plan.model if plan.hf is None else plan.hf.settings),
        ),
        seed=int(config.get("seed", 0)),
        tier=plan.tier,
        config=config,
        revision=plan.revision,
    )
    logger = write_error = None
    try:
        logger = _train_and_measure(plan, run_dir, result)
    except UserError:
        result.status, result.error = "failed", traceback.format_exc(limit=0).strip()
        raise
    except DivergedError as error:
        result.status, result.error = "diverged", str(error)
    except Exception as error:  # one failing cell is a record, not a lost sweep
        if is_out_of_memory(error):  # CUDA's typed error or the CPU allocator's RuntimeError
            result.status, result.error = "oom", str(error)
        else:
            result.status = "failed"
            result.error = f"{type(error).__name__}: {error}\n{traceback.format_exc()}"
    except BaseException as error:  # Ctrl-C (Lightning turns it into SystemExit): stop, on record
        result.status, result.error = "failed", f"interrupted ({type(error).__name__})"
        raise
    finally:
        result.environment = Environment.from_dict(environment())
        try:
            result.write(run_dir)
        except OSError as error:  # raised below, once the figures are safe in `result`
            write_error = error
        if logger is not None:
            from xbench.integrations.wandb import log_summary

            log_summary(logger, result)
    if write_error is not None:
        raise RecordNotWritten(result, run_dir / RESULT_FILE, write_error) from write_error
    return result


def _train_and_measure(plan: RunPlan, run_dir: Path, result: RunResult):
    config = plan.config
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))
    for pattern in _QUIET:
        warnings.filterwarnings("ignore", pattern)
    _quiet_lightning()
    L.seed_everything(result.seed, workers=True, verbose=False)
    task = plan.task.build(plan.task_options)
    task.check(plan.task.name)
    backend = plan.backend.build(plan.backend_options)
    result.task = replace(
        result.task,
        data=task.data_info,
        source_length=task.source_length,
        target_length=task.target_length,
        primary_metric=task.primary_metric,
        higher_is_better=task.higher_is_better,
        artifacts=_copy_artifacts(task.artifacts, run_dir),
        warnings=list(task.data_warnings),
    )
    for line in task.data_warnings:
        print(f"data warning ({plan.task.name}): {line}", flush=True)
    trainer_cfg = dict(config["trainer"])
    if plan.hf is not None:  # a Hugging Face model: evaluated, never trained
        from xbench.run.hf_eval import evaluate_hf

        device = _training_device(trainer_cfg)
        evaluate_hf(plan, task, run_dir, result, device, _compute_dtype(trainer_cfg, device))
        return _logger(config, run_dir, result)  # the record's summary goes to wandb too
    reason = _unsupported(backend, plan.model, task, trainer_cfg)
    if reason:
        result.status, result.error = "unsupported", reason
        return None

    model = build_model(plan, task)
    backend = model.backends[-1]  # measured and described: the layer the heatmaps draw
    print(header_line(plan, trainer_cfg), flush=True)
    optim, total_steps = plan.optim, _max_steps(trainer_cfg)
    if plan.trained_with is not None:
        result.swap = swap_in(plan, model, lambda training: _train_weights(training, task, run_dir))
        total_steps = trainer_cfg["max_steps"] = plan.eval.finetune_steps
        optim = replace(optim, warmup_steps=max(1, min(optim.warmup_steps, total_steps // 5)))
    module = Seq2SeqModule(model, task, optim, max(total_steps, 1))
    logger = _logger(config, run_dir, result)
    timer = StepTimer()
    callbacks = [timer, *heatmap_callbacks(plan.heatmaps, config, plan.task.modality)]
    trainer = _trainer(trainer_cfg, run_dir, logger, callbacks)
    load_at_train = MachineLoad.from_dict(machine_load())
    if total_steps:
        trainer.fit(module, datamodule=task.datamodule)
    trainer.test(module, datamodule=task.datamodule, verbose=False)
    if not trainer.is_global_zero:
        return logger

    result.quality = _quality(task, module)
    result.quality.examples_file = write_examples(
        task,
        module.test_predictions,
        module.test_references,
        module.test_scores.get(task.primary_metric),
        run_dir,
        trainer.world_size,
    )
    device = trainer.strategy.root_device  # Lightning moves the module back to CPU after test
    result.fidelity = fidelity_on_test_set(
        model,
        task.datamodule,
        task.tokenizer.pad_id,
        plan.backend.exact,
        device,
        batches_tested(trainer),
    )
    peak_memory = run_peak_memory(device)  # before the timing call resets the CUDA peak
    load_at_measure = MachineLoad.from_dict(machine_load())
    phases = measure_phases(
        backend,
        model,
        task.datamodule,
        plan.measure,
        device,
        _compute_dtype(trainer_cfg, device),
    )
    train_step = timer.summary()
    decode_step_ms = module.decode_step_ms
    result.efficiency = Efficiency(
        train_step=train_step,
        train_steps=trainer.global_step,
        fit_seconds=timer.fit_seconds,
        inference_tokens_per_second=module.inference_tokens / max(module.inference_seconds, 1e-9),
        decode_step_ms=decode_step_ms,
        cross_attention=with_shares(
            phases,
            plan.model.decoder_layers,
            train_step.median_ms if train_step else None,
            decode_step_ms,
        ),
        peak_memory=peak_memory,
        load_at_train=load_at_train,
        load_at_measure=load_at_measure,
    )
    result.backend.describe = backend.describe()
    return logger


def _max_steps(trainer_cfg: dict) -> int:
    """The schedule's length: the step budget (1000 when training is bounded by epochs)."""
    return int(trainer_cfg.get("max_steps") or 1000)


def _trainer(trainer_cfg: dict, run_dir: Path, logger, callbacks: list) -> L.Trainer:
    if trainer_cfg.get("enable_progress_bar", True):
        callbacks = [*callbacks, StepProgressBar()]
    return L.Trainer(
        **trainer_cfg,
        logger=logger or False,
        callbacks=callbacks,
        default_root_dir=str(run_dir),
        enable_model_summary=False,
    )


def _quality(task: Task, module: Seq2SeqModule) -> Quality:
    scores = module.test_scores
    return Quality(
        primary_metric=task.primary_metric,
        primary=scores.get(task.primary_metric),
        higher_is_better=task.higher_is_better,
        metrics=scores,
        samples=[Sample.from_dict(sample) for sample in module.samples],
        test_examples=len(module.test_predictions),
    )


def _train_weights(plan: RunPlan, task: Task, run_dir: Path):
    """Train and test the swap-in weights with ``plan``'s backend: their state without
    backend entries, and their own test quality."""
    print(f"xbench: training the swap-in weights with {plan.backend.name}", flush=True)
    model = build_model(plan, task)
    trainer_cfg = dict(plan.config["trainer"])
    module = Seq2SeqModule(model, task, plan.optim, _max_steps(trainer_cfg))
    trainer = _trainer(trainer_cfg, run_dir / "trained_with", None, [])
    trainer.fit(module, datamodule=task.datamodule)
    trainer.test(module, datamodule=task.datamodule, verbose=False)
    return shared_state(model), _quality(task, module)


def build_model(plan: RunPlan, task: Task) -> EncoderDecoder:
    """The run's encoder-decoder over ``task``: one backend instance per decoder layer, and
    query positions spanning the task's decoding budget (what ``generate`` is given)."""
    return EncoderDecoder(
        plan.model,
        task.tokenizer.vocab_size,
        task.tokenizer.pad_id,
        task.frontend,
        functools.partial(plan.backend.build, plan.backend_options),
        decode_length=task.decoding_budget,
    )


def header_line(plan: RunPlan, trainer_cfg: dict) -> str:
    """What is about to run, in one line: ``xbench: flash × qa on cpu (2 threads), 800
    steps, model=tiny, seed 0``."""
    device = _training_device(trainer_cfg)
    where = (
        f"cuda ({torch.cuda.get_device_name(device)})"
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    if plan.trained_with is not None:
        budget = (
            f"weights trained with {plan.trained_with.name}, "
            f"{plan.eval.finetune_steps} fine-tuning steps"
        )
    elif trainer_cfg.get("fast_dev_run"):
        budget = "fast_dev_run (one batch each of train, val and test)"
    elif (trainer_cfg.get("max_steps") or -1) > 0:
        budget = f"{trainer_cfg['max_steps']} steps"
    else:
        budget = f"{trainer_cfg.get('max_epochs')} epochs"
    model = plan.config["model"].get("name") or "custom"
    tier = "" if plan.tier == "default" else f", tier={plan.tier}"
    return (
        f"xbench: {plan.backend.name} × {plan.task.name} on {where}, {budget}, "
        f"model={model}{tier}, seed {plan.config.get('seed', 0)}"
    )


def _copy_artifacts(artifacts: dict[str, Path], run_dir: Path) -> dict[str, str]:
    """Copy the task's files into the run directory; returns their paths there."""
    copied = {}
    for name, source in artifacts.items():
        target = run_dir / "artifacts" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        copied[name] = str(target)
    return copied


def _unsupported(backend, model: ModelSettings, task, trainer_cfg: dict) -> str | None:
    """Ask the backend, on a tiny input of the task's shape, whether it can run at all."""
    device = _training_device(trainer_cfg)
    dtype = _compute_dtype(trainer_cfg, device)
    q = torch.zeros(1, model.heads, task.target_length, model.head_dim, device=device, dtype=dtype)
    k = torch.zeros(1, model.heads, task.source_length, model.head_dim, device=device, dtype=dtype)
    mask = torch.ones(1, task.source_length, dtype=torch.bool, device=device)
    return backend.to(device).supports(q, k, k, mask)


def _training_device(trainer_cfg: dict) -> torch.device:
    wants_gpu = trainer_cfg.get("accelerator") in ("gpu", "cuda", "auto")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def _compute_dtype(trainer_cfg: dict, device: torch.device) -> torch.dtype:
    precision = str(trainer_cfg.get("precision", "32"))
    if device.type != "cuda":
        return torch.float32
    if "bf16" in precision:
        return torch.bfloat16
    return torch.float16 if precision.startswith("16") else torch.float32


def _logger(config: dict, run_dir: Path, result: RunResult):
    from xbench.integrations.wandb import make_wandb_logger, wandb_enabled

    settings = config.get("logger") or {}
    if not wandb_enabled(settings):
        return None
    return make_wandb_logger(settings, run_dir, result.run_id, config)

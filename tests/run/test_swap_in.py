"""Swap-in evaluation: weights trained once with one backend (cached by what determines
them), tested with another, optionally fine-tuned first; the record says which was which."""

from __future__ import annotations

import pytest
import torch
from helpers import SMALL_QA, composed_config

from xbench.api.errors import UserError
from xbench.records.result import RunResult
from xbench.registry import get_registry
from xbench.run.plan import plan_run
from xbench.run.runner import build_model, execute
from xbench.run.swap import load_shared, training_plan, weights_key

# A few real steps (not fast_dev_run), so the trained cross-attention is no longer uniform.
SHORT = [
    "trainer.max_steps=40",
    "trainer.val_check_interval=40",
    "logger=none",
    "heatmaps.enabled=false",
    "measure.repeats=2",
    "measure.warmup=0",
    *SMALL_QA,
]


def _run(tmp_path, name, overrides):
    config = composed_config([*SHORT, *overrides])
    config["output_root"] = str(tmp_path / "runs")
    result = execute(plan_run(config, get_registry()), tmp_path / name)
    assert result.status == "ok", result.error
    return RunResult.load(tmp_path / name / "result.json")


@pytest.mark.slow
def test_weights_are_trained_once_and_swapped_into_each_backend(tmp_path):
    naive = _run(tmp_path, "naive", ["backend=naive", "eval.trained_with=flash"])
    uniform = _run(tmp_path, "uniform", ["backend=uniform", "eval.trained_with=flash"])
    tuned = _run(
        tmp_path,
        "tuned",
        ["backend=uniform", "eval.trained_with=flash", "eval.finetune_steps=5"],
    )

    assert naive.swap.trained_with == "flash" and naive.swap.evaluated_with == "naive"
    assert not naive.swap.reused and uniform.swap.reused and tuned.swap.reused
    assert naive.swap.checkpoint == uniform.swap.checkpoint
    trained = naive.swap.trained_quality
    # naive is exact attention: the same weights give the answers flash gave
    assert [s.prediction for s in naive.quality.samples] == [s.prediction for s in trained.samples]
    assert naive.quality.primary == pytest.approx(trained.primary, abs=1e-6)
    logits = {name: _logits_with(name, naive.swap.checkpoint) for name in ("flash", "naive")}
    torch.testing.assert_close(logits["naive"], logits["flash"], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(_logits_with("uniform", naive.swap.checkpoint), logits["flash"])
    assert naive.efficiency.train_steps == 0 and tuned.efficiency.train_steps == 5
    assert tuned.swap.finetune_steps == 5


def _logits_with(backend: str, checkpoint: str) -> torch.Tensor:
    """Teacher-forced logits of the first test batch, the cached weights under ``backend``."""
    plan = plan_run(composed_config([f"backend={backend}", *SHORT]), get_registry())
    task = plan.task.build(plan.task_options)
    model = build_model(plan, task).eval()
    load_shared(model, torch.load(checkpoint, weights_only=True))
    batch = next(iter(task.datamodule.test_dataloader()))
    with torch.no_grad():
        return model(batch["source"], batch["target"][:, :-1], batch.get("prompt"))


def test_the_weights_key_follows_training_settings_only():
    def key(*overrides):
        plan = plan_run(composed_config(["eval.trained_with=flash", *overrides]), get_registry())
        return weights_key(training_plan(plan))

    assert key("backend=naive") == key("backend=uniform"), "the evaluated backend is not trained"
    assert key() == key("heatmaps.enabled=false", "measure.repeats=3", "logger=none")
    assert key() != key("trainer.max_steps=10")
    assert key() != key("seed=1")
    assert key() != key("task.data.num_facts=9")


def test_the_header_says_what_was_swapped():
    from xbench.run.runner import header_line

    config = composed_config(
        ["backend=uniform", "eval.trained_with=naive", "eval.finetune_steps=7"]
    )
    line = header_line(plan_run(config, get_registry()), config["trainer"])

    assert "uniform × qa" in line and "weights trained with naive, 7 fine-tuning steps" in line


def test_the_training_plan_swaps_only_the_backend():
    plan = plan_run(composed_config(["backend=uniform", "eval.trained_with=naive"]), get_registry())

    trained = training_plan(plan)

    assert trained.backend.name == "naive" and trained.config["backend"] == {"name": "naive"}
    assert trained.trained_with is None and "eval" not in trained.config
    assert trained.task_options == plan.task_options and trained.model == plan.model


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["eval.trained_with=flsh"], "eval.trained_with: unknown backend 'flsh'"),
        (["eval.finetune_steps=3"], "eval.finetune_steps=3 adapts a swapped-in backend"),
        (["eval.trained_with=flash", "eval.finetune_steps=-1"], "eval.finetune_steps=-1"),
    ],
)
def test_bad_swap_settings_are_one_line_errors(overrides, message):
    with pytest.raises(UserError, match=message):
        plan_run(composed_config(overrides), get_registry())


def test_a_checkpoint_that_does_not_fit_is_refused():
    model = torch.nn.Linear(2, 2)

    with pytest.raises(RuntimeError, match="does not fit the model: weight"):
        load_shared(model, {"bias": torch.zeros(2)})

"""Attention fidelity and sparsity: the tensor functions on hand-built weights, and a real
model's pass over a real task's test set."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from helpers import SMALL_QA, composed_config

from xbench.records.result import Fidelity, RunResult
from xbench.registry import get_registry
from xbench.run.fidelity import (
    LayerTally,
    alignment_error_rate,
    argmax_links,
    batches_tested,
    entropy,
    fidelity_on_test_set,
    keys_to_cover,
    mass_on_truth,
    measure_fidelity,
    uniform_mass,
)
from xbench.run.plan import plan_run
from xbench.run.runner import build_model, execute

DEBUG = ["trainer=debug", "logger=none", *SMALL_QA]


def _alignment() -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 3, 5) alignment (row 0 one-to-one, row 1 one-to-many, row 2 unknown) and its
    key mask: the last key is padding."""
    alignment = torch.zeros(1, 3, 5, dtype=torch.bool)
    alignment[0, 0, 1] = True
    alignment[0, 1, [2, 3]] = True
    return alignment, torch.tensor([[True, True, True, True, False]])


def test_a_backend_attending_exactly_to_the_truth_puts_all_its_mass_there():
    alignment, mask = _alignment()
    weights = alignment.float() / alignment.float().sum(-1, keepdim=True).clamp(min=1)
    weights[0, 2] = torch.tensor([0.25, 0.25, 0.25, 0.25, 0.0])  # an unknown row: left out
    assert mass_on_truth(weights, alignment).tolist() == [1.0, 1.0]
    assert argmax_links(weights[:, :1], alignment[:, :1]) == (1, 1, 1)
    assert alignment_error_rate(*argmax_links(weights[:, :1], alignment[:, :1])) == 0.0


def test_uniform_weights_score_the_chance_level():
    alignment, mask = _alignment()
    weights = mask[:, None, :].float().expand(1, 3, 5) / 4
    assert mass_on_truth(weights, alignment).tolist() == pytest.approx([0.25, 0.5])
    assert uniform_mass(alignment, mask).tolist() == pytest.approx([0.25, 0.5])


def test_alignment_error_rate_counts_argmax_links_against_gold():
    alignment, _ = _alignment()
    weights = torch.zeros(1, 3, 5)
    weights[0, 0, 0] = 1.0  # wrong key
    weights[0, 1, 3] = 1.0  # one of its two true keys
    weights[0, 2, 4] = 1.0  # unknown row: not a link
    hits, predicted, gold = argmax_links(weights, alignment)
    assert (hits, predicted, gold) == (1, 2, 3)
    assert alignment_error_rate(hits, predicted, gold) == pytest.approx(1 - 2 / 5)
    assert alignment_error_rate(0, 0, 0) is None


def test_keys_to_cover_and_entropy_on_hand_built_distributions():
    weights = torch.tensor(
        [
            [0.05, 0.5, 0.15, 0.3, 0.0],  # padded last key
            [0.25, 0.25, 0.25, 0.25, 0.0],
            [0.0, 0.0, 1.0, 0.0, 0.0],
        ]
    )
    mask = torch.tensor([[True, True, True, True, False]] * 3)
    assert keys_to_cover(weights, mask).tolist() == [[1, 3, 4], [2, 4, 4], [1, 1, 1]]
    nats = entropy(weights, mask)
    assert nats[1].item() == pytest.approx(math.log(4))
    assert nats[2].item() == pytest.approx(0.0, abs=1e-6)
    expected = -sum(p * math.log(p) for p in (0.05, 0.5, 0.15, 0.3))
    assert nats[0].item() == pytest.approx(expected)


def test_the_sparsity_profile_takes_medians_over_real_target_tokens():
    alignment, mask = _alignment()
    weights = torch.tensor([[[0.7, 0.1, 0.1, 0.1, 0.0]] * 2 + [[0.25] * 4 + [0.0]]])
    tally = LayerTally()
    rows = torch.tensor([[True, True, False]])  # the third row is target padding
    tally.add(weights, mask, rows, alignment, sparsity=True)
    profile = tally.profile()
    assert profile.tokens == 2 and profile.real_keys == 4
    assert (profile.keys_50, profile.keys_90, profile.keys_99) == (1, 3, 4)
    assert profile.fraction_50 == 0.25
    normalised = -(0.7 * math.log(0.7) + 3 * 0.1 * math.log(0.1)) / math.log(4)
    assert profile.entropy_normalised == pytest.approx(normalised)
    assert tally.mean_mass() == pytest.approx((0.1 + 0.2) / 2)


def _small_qa_model(backend: str):
    config = composed_config([f"backend={backend}", *DEBUG])
    plan = plan_run(config, get_registry())
    task = plan.task.build(plan.task_options)
    return build_model(plan, task), task, plan.backend.exact


@pytest.mark.parametrize("backend", ["uniform", "flash"])
def test_a_real_model_is_measured_on_every_layer_of_the_test_set(backend):
    model, task, exact = _small_qa_model(backend)
    model.eval()
    with torch.no_grad():
        fidelity = measure_fidelity(
            model, task.datamodule.test_dataloader(), task.tokenizer.pad_id, exact, "cpu"
        )
    assert len(fidelity.layers) == len(model.decoder) and fidelity.layer == len(model.decoder) - 1
    answers = sum(len(t) - 2 for _, _, t, *_ in task.datamodule.splits["test"].items)
    assert fidelity.aligned_tokens == answers  # every answer token, no EOS, no padding
    assert 0.0 < fidelity.uniform_mass < 0.1
    if backend == "uniform":  # the control's attention is the chance level, on every layer
        for layer in fidelity.layers:
            assert layer.mass_on_truth == pytest.approx(fidelity.uniform_mass, rel=1e-5)
        assert fidelity.sparsity is None
    else:
        assert fidelity.sparsity.tokens > answers  # EOS rows count for sparsity
        assert 1 <= fidelity.sparsity.keys_50 <= fidelity.sparsity.keys_90
        assert fidelity.sparsity.keys_99 <= fidelity.sparsity.real_keys


def test_a_failing_measurement_is_a_note_and_leaves_the_model_as_it_was():
    model, task, _ = _small_qa_model("flash")
    model.train()

    class Broken:
        def test_dataloader(self):
            raise RuntimeError("no test split today")

    fidelity = fidelity_on_test_set(
        model, Broken(), task.tokenizer.pad_id, True, torch.device("cpu")
    )
    assert fidelity.note == "not measured: RuntimeError: no test split today"
    assert fidelity.mass_on_truth is None and model.training


def test_data_without_alignment_gives_no_fidelity_for_an_approximation():
    model, task, _ = _small_qa_model("linear")
    loader = [
        {k: v for k, v in batch.items() if k != "alignment"}
        for batch in task.datamodule.test_dataloader()
    ]
    with torch.no_grad():
        assert measure_fidelity(model, loader, task.tokenizer.pad_id, False, "cpu") is None
        exact = measure_fidelity(model, loader, task.tokenizer.pad_id, True, "cpu")
    assert exact.note == "the test data carries no alignment" and exact.mass_on_truth is None
    assert exact.sparsity is not None


def test_the_run_record_keeps_the_fidelity(tmp_path):
    config = composed_config(["backend=flash", *DEBUG])
    result = execute(plan_run(config, get_registry()), tmp_path)
    assert result.status == "ok", result.error
    stored = RunResult.load(tmp_path / "result.json")
    assert isinstance(stored.fidelity, Fidelity)
    assert stored.fidelity == result.fidelity
    assert stored.fidelity.mass_on_truth is not None and stored.fidelity.sparsity is not None


def test_layer_inputs_match_the_last_layer_reader():
    model, task, _ = _small_qa_model("flash")
    batch = next(iter(task.datamodule.test_dataloader()))
    call = functools.partial(
        model.cross_attention_inputs, batch["source"], batch["target"][:, :-1], batch["prompt"]
    )
    with torch.no_grad():
        every, last = (
            call(),
            model.last_cross_attention_inputs(
                batch["source"], batch["target"][:, :-1], batch["prompt"]
            ),
        )
    assert len(every) == len(model.decoder)
    assert torch.equal(every[-1].q, last.q) and every[-1].positions == last.positions
    assert not torch.equal(every[0].q, every[-1].q)


def test_fidelity_covers_the_batches_the_test_loop_read():
    class Trainer:
        num_test_batches = [2]

    assert batches_tested(Trainer()) == 2
    Trainer.num_test_batches = [math.inf]
    assert batches_tested(Trainer()) is None
    model, task, _ = _small_qa_model("flash")
    batches = list(task.datamodule.test_dataloader())
    first = sum(int((b["target"][:, 1:] > task.tokenizer.eos_id).sum()) for b in batches[:1])
    with torch.no_grad():
        fidelity = measure_fidelity(model, batches, task.tokenizer.pad_id, True, "cpu", 1)
    assert fidelity.aligned_tokens == first

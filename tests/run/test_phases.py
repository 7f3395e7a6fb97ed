"""The three cross-attention phases at a task's real batches: the batch sizes, decoder
columns and ragged source masks of the QA task's own loaders, and the shares of a step."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import SMALL_QA, composed_config

from xbench.measure.inputs import padded_share
from xbench.measure.types import AttentionShape, Latency, Measurement
from xbench.records.result import PHASES, CrossAttentionPhases
from xbench.registry import get_registry
from xbench.run.phases import first_batch, measure_phases, real_batch, with_shares
from xbench.run.plan import plan_run
from xbench.run.runner import build_model


@pytest.fixture(scope="module")
def qa():
    """The small QA task with a naive-attention model over it (untrained: masks and shapes
    do not depend on the weights)."""
    plan = plan_run(composed_config(["backend=naive", *SMALL_QA]), get_registry())
    task = plan.task.build(plan.task_options)
    model = build_model(plan, task)
    return plan, task, model


def test_a_real_batch_is_the_mask_and_decoder_columns_the_model_sees(qa):
    _, task, model = qa
    batch = first_batch(task.datamodule.test_dataloader())

    real = real_batch(model, batch)

    _, mask = model.encode(batch["source"])
    assert torch.equal(real.mask, mask)
    assert real.batch == batch["target"].shape[0] and real.keys == batch["source"].shape[1]
    assert real.decoder_length == batch["prompt"].shape[1] + batch["target"].shape[1] - 1
    assert not bool(real.mask.all()), "QA's sources are ragged: some keys are padding"


def test_each_phase_is_measured_at_its_real_batch_with_that_batch_s_mask(qa):
    plan, task, model = qa
    backend = model.backends[-1]
    L.seed_everything(7, verbose=False)  # the train loader shuffles with torch's RNG
    phases = measure_phases(
        backend, model, task.datamodule, plan.measure, torch.device("cpu"), torch.float32
    )
    L.seed_everything(7, verbose=False)
    train = real_batch(model, first_batch(task.datamodule.train_dataloader()))
    test = real_batch(model, first_batch(task.datamodule.test_dataloader()))

    assert [phases.phase(name).status for name in PHASES] == ["ok"] * 3
    assert phases.train.shape == AttentionShape(
        batch=task.datamodule.batch_size,
        heads=plan.model.heads,
        nq=train.decoder_length,
        nk=train.keys,
        head_dim=plan.model.head_dim,
        dtype="float32",
        device="cpu",
        passes="fwd+bwd",
        padded_fraction=padded_share(train.mask),
    )
    assert phases.prefill.shape.passes == "fwd" and phases.prefill.shape.nq == test.decoder_length
    assert phases.decode.shape.passes == "decode" and phases.decode.shape.nq == 1
    for name in ("prefill", "decode"):
        shape = phases.phase(name).shape
        assert (shape.batch, shape.nk) == (task.datamodule.eval_batch_size, test.keys)
        assert shape.padded_fraction == padded_share(test.mask) > 0.0
    assert phases.train.shape.padded_fraction > 0.0
    assert phases.decode.prepare is not None, "prepare is timed apart from the steps"
    assert phases.decode.bytes_per_second > 0 and phases.train.tflops > 0
    assert [phases.phase(n).latency.count for n in PHASES] == [plan.measure.repeats] * 3


class _NoTrainLoader(L.LightningDataModule):
    """A data module whose train loader cannot be built."""

    def train_dataloader(self):
        raise OSError("the training shards are gone")


def test_a_batch_that_cannot_be_read_is_a_note_not_a_lost_run(qa):
    plan, _, model = qa

    cpu = torch.device("cpu")
    phases = measure_phases(
        model.backends[-1], model, _NoTrainLoader(), plan.measure, cpu, torch.float32
    )

    assert (phases.train, phases.prefill, phases.decode) == (None, None, None)
    assert phases.note == "no real batch to measure at: OSError: the training shards are gone"


def _timed(ms: float, passes: str) -> Measurement:
    shape = AttentionShape(2, 2, 1, 8, 16, "float32", "cpu", passes=passes)
    return Measurement(shape, latency=Latency(median_ms=ms, iqr_ms=0.0, count=3))


def test_a_share_is_every_decoder_layer_s_cross_attention_over_the_step():
    phases = CrossAttentionPhases(train=_timed(2.0, "fwd+bwd"), decode=_timed(0.1, "decode"))

    shared = with_shares(phases, decoder_layers=3, train_step_ms=40.0, decode_step_ms=1.5)

    assert shared.train_share == pytest.approx(3 * 2.0 / 40.0)
    assert shared.decode_share == pytest.approx(3 * 0.1 / 1.5)
    assert shared.train is phases.train, "the measurements stay as they were"


def test_no_share_without_both_figures():
    unmeasured = Measurement(AttentionShape(2, 2, 1, 8, 16, "float32", "cpu"), status="oom")
    phases = CrossAttentionPhases(train=_timed(2.0, "fwd+bwd"), decode=unmeasured)

    shared = with_shares(phases, decoder_layers=2, train_step_ms=None, decode_step_ms=1.0)

    assert (shared.train_share, shared.decode_share) == (None, None)

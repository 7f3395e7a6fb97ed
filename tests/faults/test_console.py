"""A run's console says what xbench means to say: the header line, a progress bar over
``max_steps``, the summary with noisy latencies marked, the record path whole; library
chatter is silenced at its source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import SMALL_QA
from rich.console import Console

from xbench.measure.clock import summarize
from xbench.measure.types import Latency
from xbench.records.result import RunResult
from xbench.run.callbacks import StepProgressBar, train_description
from xbench.views.run_summary import print_summary

NOISE = (
    "litlogger",
    "GPU available",
    "TPU available",
    "HPU available",
    "anonymous setting",
    "/-2",
    "Traceback",
)


@pytest.mark.slow
def test_a_tiny_run_prints_the_header_and_none_of_the_library_noise(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "xbench.cli", "run", "trainer=debug", "logger.mode=offline"]
        + SMALL_QA,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "40", "WANDB_DIR": str(tmp_path), "WANDB_API_KEY": ""},
    )

    output = done.stdout
    assert done.returncode == 0, output
    for noise in NOISE:
        assert noise not in output, noise
    assert "step 1: validation samples" in output  # Lightning's logger still carries these
    header = "xbench: flash × qa on cpu ("
    assert any(
        line.startswith(header) and "model=tiny, seed 0" in line for line in output.splitlines()
    )
    (record_line,) = [line for line in output.splitlines() if line.startswith("run record: ")]
    path = Path(record_line.removeprefix("run record: "))  # whole, although COLUMNS=40
    assert RunResult.load(path).status == "ok"


def test_progress_label_counts_steps_when_steps_bound_training():
    assert train_description(max_steps=800, current_epoch=2) == "steps"
    assert train_description(max_steps=-1, current_epoch=2) == "Epoch 2"


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(torch.ones(3, 2))
        return torch.utils.data.DataLoader(data, batch_size=1)


def test_the_bar_counts_optimiser_steps_toward_max_steps_across_epochs(tmp_path):
    bar = StepProgressBar()
    trainer = L.Trainer(
        max_steps=7,
        callbacks=[bar],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )

    trainer.fit(_Tiny())  # 3 batches an epoch: the 7 steps span 3 epochs

    (task,) = [t for t in bar.progress.tasks if t.id == bar.train_progress_bar_id]
    assert trainer.current_epoch >= 2
    assert (task.completed, task.total) == (7, 7)
    assert task.description.strip() == "steps"


@pytest.mark.parametrize(
    ("values", "noisy"),
    [([0.1, 0.1, 0.12, 20.0, 30.0], True), ([1.0, 1.1, 1.2, 1.3], False), ([5.0], False)],
)
def test_a_latency_whose_iqr_exceeds_its_median_is_flagged_noisy(values, noisy):
    assert summarize(values).noisy is noisy


def test_a_noisy_latency_is_marked_in_the_table_and_kept_in_the_record(tmp_path):
    from helpers.records import record

    result = record()
    noisy = Latency(median_ms=0.141, iqr_ms=12.264, count=20, noisy=True)
    result.efficiency.cross_attention.train.latency = noisy
    console = Console(record=True, width=250)

    print_summary([result], console)

    assert "0.141 ± 12.264 (noisy)" in console.export_text()
    back = RunResult.load(result.write(tmp_path))
    assert back.efficiency.cross_attention.train.latency.noisy is True
    assert Latency(median_ms=0.141, iqr_ms=0.01, count=20).text == "0.141 ± 0.010"

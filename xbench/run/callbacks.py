"""Lightning callbacks of a run: the step timer that feeds the run record, and the
progress bar that counts steps toward ``max_steps``."""

from __future__ import annotations

import time

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar

from xbench.measure.clock import summarize
from xbench.measure.types import Latency

WARMUP_STEPS = 10


class StepTimer(L.Callback):
    """Wall time of each training step (CUDA-synchronised on GPU); the first
    ``WARMUP_STEPS`` steps are left out of the summary. ``fit_seconds`` is the wall time
    of the whole training loop, data loading, validation and slow steps included (None
    until training ended), which the median step leaves out."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.fit_seconds: float | None = None
        self._start = 0.0
        self._fit_start = 0.0

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_start(self, trainer, pl_module) -> None:
        self._sync(pl_module)
        self._fit_start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self._sync(pl_module)
        self.fit_seconds = time.perf_counter() - self._fit_start

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self.times.append(time.perf_counter() - self._start)

    def summary(self) -> Latency | None:
        """Milliseconds per step: median and IQR of the steady steps (None: no step ran)."""
        times = self.times[WARMUP_STEPS:] or self.times
        return summarize([t * 1e3 for t in times]) if times else None


def train_description(max_steps: int, current_epoch: int) -> str:
    """The training bar's label: ``steps`` when ``max_steps`` bounds training (the bar
    counts optimiser steps toward it), else Lightning's own ``Epoch N``."""
    return "steps" if max_steps > 0 else f"Epoch {current_epoch}"


class StepProgressBar(RichProgressBar):
    """Lightning's rich bar, but bounded by ``max_steps`` it is one bar over all epochs
    reading ``steps 37/800`` (Lightning's reads ``Epoch 2/-2`` there)."""

    def _by_steps(self) -> bool:
        return self.trainer.max_steps > 0

    @property
    def total_train_batches(self) -> int | float:
        return self.trainer.max_steps if self._by_steps() else super().total_train_batches

    def _get_train_description(self, current_epoch: int) -> str:
        if not self._by_steps():
            return super()._get_train_description(current_epoch)
        return f"{train_description(self.trainer.max_steps, current_epoch):{len('Validation')}}"

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if not self._by_steps() or self.train_progress_bar_id is None:
            super().on_train_epoch_start(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._by_steps():
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        self._update(self.train_progress_bar_id, trainer.global_step)
        self._update_metrics(trainer, pl_module)
        self.refresh()

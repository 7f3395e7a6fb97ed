"""Lightning callbacks that feed the run record."""

from __future__ import annotations

import time

import lightning as L
import torch

from xbench.measure.clock import summarize
from xbench.measure.types import Latency

WARMUP_STEPS = 10


class StepTimer(L.Callback):
    """Wall time of each training step (CUDA-synchronised on GPU); the first
    ``WARMUP_STEPS`` steps are left out of the summary."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self.times.append(time.perf_counter() - self._start)

    def summary(self) -> Latency:
        """Milliseconds per step: median and IQR of the steady steps."""
        return summarize([t * 1e3 for t in self.times[WARMUP_STEPS:] or self.times])

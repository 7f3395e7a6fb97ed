"""Training, validation and test of the encoder-decoder as a LightningModule."""

from __future__ import annotations

import math
import time

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info

from xbench.api.task import Task
from xbench.config.settings import OptimSettings
from xbench.run.model import EncoderDecoder


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to 10 % at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


SAMPLES = 5  # outputs kept per evaluation for people to read


def _samples(predictions: list[str], references: list[list[str]]) -> list[dict[str, str]]:
    return [
        {"prediction": p, "reference": r[0]}
        for p, r in zip(predictions[:SAMPLES], references[:SAMPLES], strict=True)
    ]


class Seq2SeqModule(L.LightningModule):
    """Teacher-forced cross-entropy training; greedy decoding scored by the task's metrics.

    The test loop times its greedy decoding: ``inference_seconds`` over all test batches,
    the ``inference_tokens`` written and the ``decode_steps`` taken (one step writes the
    next token of every sequence in a batch). A step's time there is the whole
    ``generate`` call spread over its steps, so it includes the batch's encoder pass.
    It also keeps every test example's prediction and references, in test order
    (``test_predictions``, ``test_references``), for the per-example sidecar.
    """

    def __init__(self, model: EncoderDecoder, task: Task, optim: OptimSettings, total_steps: int):
        super().__init__()
        self.model = model
        self.task = task
        self.optim = optim
        self.total_steps = total_steps
        self.val_metrics = task.metrics()
        self.test_metrics = task.metrics()
        self.max_new_tokens = task.decoding_budget
        self.inference_seconds = 0.0
        self.inference_tokens = 0
        self.decode_steps = 0
        self.test_scores: dict[str, float] = {}
        self.samples: list[dict[str, str]] = []
        self.test_predictions: list[str] = []
        self.test_references: list[list[str]] = []
        self.val_samples: list[dict[str, str]] = []

    def _loss(self, batch) -> torch.Tensor:
        target = batch["target"]
        logits = self.model(batch["source"], target[:, :-1], batch.get("prompt"))
        return F.cross_entropy(
            logits.flatten(0, 1).float(),
            target[:, 1:].flatten(),
            ignore_index=self.task.tokenizer.pad_id,
            label_smoothing=self.optim.label_smoothing,
        )

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        if not torch.isfinite(loss):
            raise DivergedError(f"training loss is {loss.item()} at step {self.global_step}")
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["target"].shape[0])
        return loss

    def _generate(self, batch) -> list[str]:
        tokenizer = self.task.tokenizer
        ids = self.model.generate(
            batch["source"],
            tokenizer.bos_id,
            tokenizer.eos_id,
            self.max_new_tokens,
            batch.get("prompt"),
        )
        return [tokenizer.decode(row.tolist()) for row in ids], ids

    def validation_step(self, batch, batch_idx):
        size = batch["target"].shape[0]
        self.log("val/loss", self._loss(batch), prog_bar=True, batch_size=size, sync_dist=True)
        predictions, _ = self._generate(batch)
        self.val_metrics.update(predictions, batch["references"])
        if batch_idx == 0:
            self.val_samples = _samples(predictions, batch["references"])

    def on_validation_epoch_end(self):
        scores = {f"val/{k}": float(v) for k, v in self.val_metrics.compute().items()}
        self.log_dict(scores, prog_bar=True, sync_dist=True)
        self.val_metrics.reset()
        self._log_samples()

    def _log_samples(self) -> None:
        """Show a few validation outputs next to their references (console and wandb)."""
        if not self.val_samples or self.trainer.sanity_checking:
            return
        lines = [f"step {self.global_step}: validation samples"]
        for sample in self.val_samples:
            lines += [f"  output: {sample['prediction']!r}", f"  ref:    {sample['reference']!r}"]
        rank_zero_info("\n".join(lines))
        if isinstance(self.logger, WandbLogger):
            rows = [[self.global_step, s["prediction"], s["reference"]] for s in self.val_samples]
            self.logger.log_text("val/samples", columns=["step", "output", "reference"], data=rows)

    def test_step(self, batch, batch_idx):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        predictions, ids = self._generate(batch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.inference_seconds += time.perf_counter() - start
        pad, eos = self.task.tokenizer.pad_id, self.task.tokenizer.eos_id
        self.inference_tokens += int(((ids != pad) | (ids == eos)).sum())
        self.decode_steps += ids.shape[1]
        self.test_metrics.update(predictions, batch["references"])
        self.test_predictions += predictions
        self.test_references += [list(refs) for refs in batch["references"]]
        if len(self.samples) < SAMPLES:
            missing = SAMPLES - len(self.samples)
            self.samples += _samples(predictions, batch["references"])[:missing]

    @property
    def decode_step_ms(self) -> float | None:
        """Mean milliseconds of one decoding step in the test loop, the encoder pass
        amortised in (None before a test batch was decoded)."""
        return 1e3 * self.inference_seconds / self.decode_steps if self.decode_steps else None

    def on_test_epoch_end(self):
        self.test_scores = {k: float(v) for k, v in self.test_metrics.compute().items()}
        self.log_dict({f"test/{k}": v for k, v in self.test_scores.items()}, sync_dist=True)
        self.test_metrics.reset()

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.optim.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.optim.lr,
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: warmup_cosine(s, self.optim.warmup_steps, self.total_steps)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

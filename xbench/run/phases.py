"""The cross-attention phases a run measures after its test, at the task's real shapes.

Cross-attention is timed alone (random q, k, v) but with what the model really hands it:
a batch's size, its decoder columns (prompt and teacher-forced target) and its sources'
padding mask, ragged as the task pads them. The mask comes from the model's own frontend
on a real batch, so it is the mask training and decoding used:

- ``train``: forward+backward on the first batch of the train loader;
- ``prefill``: forward on the first test batch, teacher-forced;
- ``decode``: one query row per sequence of that test batch against its prepared memory,
  as each cached decoding step asks it.

The shares relate the phases to the run's own steps: a step runs the cross-attention of
every decoder layer once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities import move_data_to_device

from xbench.api.backend import AttentionBackend
from xbench.api.errors import first_line
from xbench.config.settings import MeasureSettings
from xbench.measure.cross_attention import REASON_CHARS, measure_cross_attention
from xbench.measure.inputs import dtype_name
from xbench.measure.types import AttentionShape, Measurement
from xbench.records.result import CrossAttentionPhases
from xbench.run.model import EncoderDecoder


@dataclass(frozen=True)
class RealBatch:
    """What cross-attention sees in one batch: ``decoder_length`` query columns (prompt
    and target input) for each of the mask's B sequences, against its Nk source positions;
    ``mask`` (B, Nk) is True on a real position."""

    decoder_length: int
    mask: torch.Tensor

    @property
    def batch(self) -> int:
        return self.mask.shape[0]

    @property
    def keys(self) -> int:
        return self.mask.shape[1]


def real_batch(model: EncoderDecoder, batch: dict[str, Any]) -> RealBatch:
    """The shape and source padding mask of ``batch`` as ``model`` would attend over it."""
    device = next(model.parameters()).device
    with torch.no_grad():
        _, mask = model.frontend(move_data_to_device(batch["source"], device))
    prompt = batch.get("prompt")
    columns = batch["target"].shape[1] - 1 + (0 if prompt is None else prompt.shape[1])
    return RealBatch(decoder_length=columns, mask=mask.detach().to("cpu", torch.bool))


def first_batch(loader: Any) -> dict[str, Any]:
    """The first batch a data loader yields."""
    return next(iter(loader))


def measure_phases(
    backend: AttentionBackend,
    model: EncoderDecoder,
    datamodule: L.LightningDataModule,
    settings: MeasureSettings,
    device: torch.device,
    dtype: torch.dtype,
) -> CrossAttentionPhases:
    """The three phases of ``backend`` (one of ``model``'s layers) at the shapes and masks
    of ``datamodule``'s first train and test batches; none of them ever raises: a batch
    that cannot be read is the phases' ``note``, a phase that cannot run is typed."""
    try:
        train = real_batch(model, first_batch(datamodule.train_dataloader()))
        test = real_batch(model, first_batch(datamodule.test_dataloader()))
    except Exception as error:  # the run's figures stay; the record says why these are blank
        reason = first_line(f"{type(error).__name__}: {error}")[:REASON_CHARS]
        return CrossAttentionPhases(note=f"no real batch to measure at: {reason}")

    return phases_at(
        backend, train, test, model.config.heads, model.config.head_dim, settings, device, dtype
    )


def phases_at(
    backend: AttentionBackend,
    train: RealBatch,
    test: RealBatch,
    heads: int,
    head_dim: int,
    settings: MeasureSettings,
    device: torch.device,
    dtype: torch.dtype,
) -> CrossAttentionPhases:
    """The three phases of ``backend`` with ``heads`` × ``head_dim`` queries at a train and
    a test batch's shapes and masks (any model's: xbench's own or a Hugging Face one)."""

    def measure(real: RealBatch, passes: str, nq: int) -> Measurement:
        shape = AttentionShape(
            batch=real.batch,
            heads=heads,
            nq=nq,
            nk=real.keys,
            head_dim=head_dim,
            dtype=dtype_name(dtype),
            device=str(device),
            passes=passes,
        )
        return measure_cross_attention(
            backend, shape, warmup=settings.warmup, repeats=settings.repeats, mask=real.mask
        )

    return CrossAttentionPhases(
        train=measure(train, "fwd+bwd", train.decoder_length),
        prefill=measure(test, "fwd", test.decoder_length),
        decode=measure(test, "decode", 1),
    )


def with_shares(
    phases: CrossAttentionPhases,
    decoder_layers: int,
    train_step_ms: float | None,
    decode_step_ms: float | None,
) -> CrossAttentionPhases:
    """``phases`` with the share of a training step and of a decoding step that the
    cross-attention of all ``decoder_layers`` takes (None where either side is missing)."""

    def share(name: str, step_ms: float | None) -> float | None:
        phase_ms = phases.median_ms(name)
        if phase_ms is None or not step_ms:
            return None
        return decoder_layers * phase_ms / step_ms

    return dataclasses.replace(
        phases,
        train_share=share("train", train_step_ms),
        decode_share=share("decode", decode_step_ms),
    )

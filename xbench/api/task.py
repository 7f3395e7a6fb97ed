"""The task contract (see DESIGN.md, "Task").

A task supplies data (a LightningDataModule), a frontend that turns its raw source into
encoder inputs, a target tokenizer and its metrics. Batches are dicts with:

- ``"source"``: whatever the task's frontend takes (token ids, audio features, pixels);
- ``"target"``: LongTensor (B, T) = BOS, tokens, EOS, then PAD;
- ``"references"``: list (B) of lists of reference strings the metrics compare against;
- ``"prompt"`` (optional): LongTensor (B, P), left-padded decoder tokens that condition the
  target without being predicted (QA's question). Keeping the question on the decoder side
  makes the decoder's queries carry it, so only cross-attention can find the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import numpy as np
from torch import Tensor, nn
from torchmetrics import MetricCollection


class Tokenizer(Protocol):
    """Target-side tokenizer: the decoder's vocabulary."""

    pad_id: int
    bos_id: int
    eos_id: int

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without BOS/EOS."""

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; stops at EOS and drops special tokens."""


class Frontend(Protocol):
    """Turns ``batch["source"]`` into ``(x (B, Nk, d_model), key_padding_mask (B, Nk))``."""

    def __call__(self, source: Any) -> tuple[Tensor, Tensor]: ...


@dataclass
class Task:
    """A built task, ready for the runner.

    ``frontend(d_model, target_embedding)`` builds the source frontend; text tasks whose
    source shares the target vocabulary may reuse ``target_embedding``. ``metrics()``
    returns a fresh collection whose ``update(predictions, references)`` takes decoded
    strings and lists of reference strings. ``source_length`` and ``target_length`` are the
    encoder and decoder lengths the task produces (cross-attention Nk and Nq, prompt
    included); ``max_new_tokens`` caps greedy decoding (default: ``target_length``).
    ``artifacts`` names files the task made that a run needs to be reproduced (e.g. a
    trained subword model); the runner copies them into ``<run dir>/artifacts/``.
    ``source_image(source, i)`` (image tasks, optional) returns example ``i`` of a batch's
    source as an H×W×3 uint8 image with its (rows, cols) patch grid, for attention overlays;
    None when it has no picture.
    """

    datamodule: L.LightningDataModule
    tokenizer: Tokenizer
    frontend: Callable[[int, nn.Embedding], nn.Module]
    metrics: Callable[[], MetricCollection]
    primary_metric: str
    higher_is_better: bool
    source_length: int
    target_length: int
    max_new_tokens: int | None = None
    data_info: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)
    source_image: Callable[[Any, int], tuple[np.ndarray, tuple[int, int]] | None] | None = None


@dataclass(frozen=True)
class TaskSpec:
    """What a plugin registers: a named factory of :class:`Task`."""

    name: str
    modality: str
    build: Callable[[Any], Task]
    options: type
    description: str = ""

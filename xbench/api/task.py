"""The task contract: what a task plugin builds and what the runner does with it.

A task supplies data (a LightningDataModule), a frontend that turns its raw source into
encoder inputs, a target tokenizer and its metrics. Batches are dicts with:

- ``"source"``: whatever the task's frontend takes (token ids, audio features, pixels);
- ``"target"``: LongTensor (B, T) = BOS, tokens, EOS, then PAD. The model is trained to
  predict ``target[:, 1:]`` from ``target[:, :-1]``;
- ``"references"``: list (B) of lists of reference strings the metrics compare against;
- ``"prompt"`` (optional): LongTensor (B, P), left-padded decoder tokens that condition the
  target without being predicted (QA's question). Keeping the question on the decoder side
  makes the decoder's queries carry it, so only cross-attention can find the answer.

Task options. The runner reads none of a task's option names: it validates the whole
``task.*`` config node against ``TaskSpec.options`` and hands the instance to ``build``.
``name`` is reserved (it selects the node, ``task=NAME``). String options whose value is
an existing local path (it contains ``/`` or has a suffix) are hashed into the run's
revision, so ``resume`` notices when such a file changes.

``examples/xbench-reverse`` is a complete task plugin built on this contract.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import lightning as L
import numpy as np
from torch import Tensor, nn
from torchmetrics import MetricCollection

from xbench.api.errors import PluginError

#: What a task's source is. It changes only how heatmaps label the source axis; training,
#: measurement and the record are the same for every value.
Modality = Literal["text", "audio", "image"]

#: What each :data:`Modality` value changes.
MODALITIES: Mapping[str, str] = {
    "text": "heatmap columns are the source tokens, decoded one by one with the task's "
    "tokenizer when the source is a (B, Nk) LongTensor of its ids (else position numbers); "
    "axis 'source token'",
    "audio": "heatmap columns are encoder frame numbers; axis 'audio frame'",
    "image": "heatmap columns are patch numbers; axis 'image patch' (overlays on the picture "
    "come from Task.source_image, whatever the modality)",
}


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
    """Turns ``batch["source"]`` into ``(x (B, Nk, d_model), key_padding_mask (B, Nk))``.

    It must add the source's positions: the encoder's self-attention is rotary (relative
    offsets only) and cross-attention sees the encoder's output as a set, so without
    absolute positions the decoder cannot tell where in the source a token is (every
    built-in frontend adds sinusoidal codes; :class:`xbench.TokenFrontend` does it for
    token ids, :func:`xbench.sinusoidal_positions` gives the codes for any other source).
    ``key_padding_mask`` is True on real positions, and a padded position must not change
    the real positions' outputs.
    """

    def __call__(self, source: Any) -> tuple[Tensor, Tensor]: ...


@dataclass
class Task:
    """A built task, ready for the runner.

    - ``datamodule``: train/val/test loaders of batches as the module doc describes.
    - ``tokenizer``: the target vocabulary (:class:`Tokenizer`).
    - ``frontend(d_model, target_embedding)`` builds the source :class:`Frontend`; text
      tasks whose source shares the target vocabulary may reuse ``target_embedding``.
    - ``metrics()`` returns a fresh ``MetricCollection`` whose ``update(predictions,
      references)`` takes decoded strings and lists of reference strings; ``compute()``
      gives floats by name (a metric returning a dict contributes each of its keys).
    - ``primary_metric``: a key of ``metrics().compute()``, the figure the leaderboard
      ranks by; ``higher_is_better`` its direction. Before training, the runner scores one
      prediction against itself on a fresh collection to check that the key exists
      (:meth:`check`).
    - ``source_length``: the longest test source in encoder positions (cross-attention Nk).
    - ``target_length``: the longest test target row in decoder tokens, **BOS and EOS
      included**, plus its prompt (cross-attention Nq). The runner asks ``supports()`` at
      (``target_length``, ``source_length``) before training, and ``xbench bench`` uses
      both as the task's real shape; a run's three measured phases take the shapes and
      padding masks of the task's own batches.
    - ``max_new_tokens`` caps greedy decoding, EOS included (default: ``target_length``);
      it is also the decoding budget of the query positions (``QueryPositions.total``).
    - ``data_info``: what identifies the data the run used, stored as the run record's
      ``task.data``. It must be JSON; by convention ``source`` (``"embedded"`` or the real
      format), what pins it down (a ``checksum``, or generator ``params``, or paths / a
      dataset name) and ``sizes`` per split.
    - ``artifacts`` names files the task made that a run needs to be reproduced (e.g. a
      trained subword model); the runner copies them into ``<run dir>/artifacts/``.
    - ``data_warnings``: one line per problem the data has that the user must see, with
      counts (e.g. a length cap that cut the answer out of 170 of 500 test contexts); the
      runner prints each and keeps them in the record (``task.warnings``).
    - ``source_image(source, i)`` (image tasks, optional) returns example ``i`` of a batch's
      source as an H×W×3 uint8 image with its (rows, cols) patch grid, for attention
      overlays; None when it has no picture.
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
    data_warnings: list[str] = field(default_factory=list)

    @property
    def decoding_budget(self) -> int:
        """Tokens greedy decoding may write (``max_new_tokens``, else ``target_length``)."""
        return self.max_new_tokens or self.target_length

    def check(self, name: str) -> None:
        """Raise :class:`PluginError` (one line, naming the task) when the built task breaks
        the contract in a way the runner would otherwise find only after training."""
        names = sorted(_metric_names(self.metrics()))
        if self.primary_metric not in names:
            raise PluginError(
                f"task {name!r}: primary_metric {self.primary_metric!r} is not a key of its "
                f"metrics(); they are: {', '.join(names) or 'none'}"
            )
        for length in ("source_length", "target_length"):
            value = getattr(self, length)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PluginError(f"task {name!r}: {length} must be an int >= 1, got {value!r}")
        try:
            json.dumps(self.data_info, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise PluginError(f"task {name!r}: data_info must be JSON ({error})") from None


_PROBE_TEXT = "a small test sentence"


def _metric_names(collection: MetricCollection) -> list[str]:
    """The keys ``compute()`` returns, found by scoring one prediction against itself (a
    collection's own keys differ when a metric returns several figures)."""
    collection.update([_PROBE_TEXT], [[_PROBE_TEXT]])
    return list(collection.compute())


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """What a plugin registers: a named factory of :class:`Task`.

    Keyword arguments only, so fields can be added without breaking a plugin.

    - ``name``: the value of ``task=NAME``; lower-case letters, digits and ``_``.
    - ``modality``: one of :data:`MODALITIES` (``register`` refuses any other value).
    - ``build``: ``build(options) -> Task``, called once per run with a validated instance
      of ``options``. Built-ins pass a module-level function ``build_<name>(options)``.
    - ``options``: a dataclass whose fields all have defaults; it becomes the config node
      ``task=NAME``. No field may be called ``name``.
    - ``description``: one line for ``xbench plugins`` and the leaderboard.
    """

    name: str
    modality: Modality
    build: Callable[[Any], Task]
    options: type
    description: str = ""

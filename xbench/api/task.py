"""The task contract: what a task plugin builds and what the runner does with it.

A task supplies data (a LightningDataModule), a frontend that turns its raw source into
encoder inputs, a target tokenizer and its metrics. Batches are dicts with:

- ``"source"``: whatever the task's frontend takes (token ids, audio features, pixels);
- ``"target"``: LongTensor (B, T) = BOS, tokens, EOS, then PAD. The model is trained to
  predict ``target[:, 1:]`` from ``target[:, :-1]``;
- ``"references"``: list (B) of lists of reference strings the metrics compare against;
- ``"prompt"`` (optional): LongTensor (B, P), left-padded decoder tokens that condition the
  target without being predicted (QA's question). Keeping the question on the decoder side
  makes the decoder's queries carry it, so only cross-attention can find the answer;
- ``"alignment"`` (optional): BoolTensor (B, T, Nk), where the answer is. Row t is the
  predicted token ``target[:, 1 + t]`` (T as in ``target[:, 1:]``), column j the encoder
  position j *after the frontend* (downsampling included, so Nk is the cross-attention's
  key count); True where that token depends on that source position (several per row for
  one-to-many, the same column in several rows for many-to-one). An all-False row is
  unknown and left out; padded rows and columns must be False. The runner scores the
  backend's attention against it on the test set (``RunResult.fidelity``:
  :mod:`xbench.run.fidelity`) and heatmaps mark it. Build it in the collate function from
  the example's token spans (``xbench.taskkit.data.alignment_matrix``); a batch without
  the key (real data that does not say) gets no fidelity figure.

Task options. The runner reads none of a task's option names: it validates the whole
``task.*`` config node against ``TaskSpec.options`` and hands the instance to ``build``.
``name`` is reserved (it selects the node, ``task=NAME``). String options whose value is
an existing local path (it contains ``/`` or has a suffix) are hashed into the run's
revision, so ``resume`` notices when such a file changes.

Per-example statistics. A task that sets ``Task.example_statistics`` lets the run keep
every test example's prediction, references and the statistics its primary metric adds up
(the record's ``examples.json``), so the leaderboard can compare two backends on the same
examples with a paired bootstrap, recomputing the metric from the statistics alone through
one of the core's :data:`CORPUS_FORMULAS` (it never imports task code). A task without it
still runs and ranks; its rows show no interval.

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


#: The sample rate of :attr:`Task.waveforms` (Hz): what speech models' own feature
#: extractors (Whisper's) read.
WAVEFORM_RATE = 16_000


#: How a primary metric is rebuilt from per-example statistics: the examples' statistics
#: are summed column by column, then (``n`` = the number of examples):
CORPUS_FORMULAS: Mapping[str, str] = {
    "mean": "one statistic per example, the metric is its mean (Σ v / n): QA's F1, CIDEr-D "
    "with the document frequencies of the whole test set",
    "ratio": "two statistics, numerator and denominator, the metric is Σ num / Σ den: WER "
    "(edit operations, reference words)",
    "bleu": "sacreBLEU BLEU's segment statistics (sacrebleu.metrics.BLEU, 4-grams, no "
    "smoothing, as torchmetrics' SacreBLEUScore), the score on sacreBLEU's 0-100 scale",
    "chrf": "sacreBLEU chrF's segment statistics (sacrebleu.metrics.CHRF, character 6-grams, "
    "no word n-grams, beta 2), the score on sacreBLEU's 0-100 scale",
}
CorpusFormula = Literal["mean", "ratio", "bleu", "chrf"]


@dataclass(frozen=True, kw_only=True)
class ExampleStatistics:
    """How a task's primary metric decomposes over its test examples.

    - ``formula``: one of :data:`CORPUS_FORMULAS`; applied to the summed statistics of all
      test examples it must give the task's ``primary_metric``.
    - ``compute(predictions, references)``: called once on the whole test split (decoded
      strings and lists of reference strings, in test order), returns one row of numbers
      per example. It sees the whole split because some statistics need it (CIDEr-D's
      document frequencies).
    """

    formula: CorpusFormula
    compute: Callable[[Sequence[str], Sequence[Sequence[str]]], Sequence[Sequence[float]]]


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
    - ``example_statistics`` (optional): how the primary metric decomposes over test
      examples (:class:`ExampleStatistics`); without it the run keeps no per-example
      statistics and the leaderboard shows no interval for its rows.
    - ``waveforms(split)`` (audio tasks, optional): the raw audio of ``"val"`` or ``"test"``,
      one mono float32 waveform at :data:`WAVEFORM_RATE` per example, in the order the
      split's dataloader yields the examples (it does not shuffle them); for models that
      compute their own features from audio (a pretrained Whisper through its feature
      extractor, ``model=hf``). None when the task has no audio to give.
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
    example_statistics: ExampleStatistics | None = None
    waveforms: Callable[[str], list[np.ndarray]] | None = None

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
        if self.example_statistics is not None:
            _check_statistics(name, self.example_statistics)
        try:
            json.dumps(self.data_info, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise PluginError(f"task {name!r}: data_info must be JSON ({error})") from None


_PROBE_TEXT = "a small test sentence"


def _check_statistics(name: str, statistics: ExampleStatistics) -> None:
    if statistics.formula not in CORPUS_FORMULAS:
        raise PluginError(
            f"task {name!r}: example_statistics.formula {statistics.formula!r} is not one of "
            f"{', '.join(CORPUS_FORMULAS)}"
        )
    rows = statistics.compute([_PROBE_TEXT], [[_PROBE_TEXT]])
    if len(rows) != 1:
        raise PluginError(
            f"task {name!r}: example_statistics.compute gave {len(rows)} rows for 1 example"
        )


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

"""``reverse``: write a letter sequence backwards, the smallest complete xbench task.

Source: random letters (``"c a f b"``); target: the same letters reversed (``"b f a c"``),
or copied with ``task.mode=copy``. Target token t comes from source position Nk − 1 − t,
so at the default lengths (12 to 24 letters) the decoder needs cross-attention that looks
at the right key: the ``uniform`` control, which averages every source position into one
vector, scores near 0 while ``naive`` learns the task (very short sequences, by contrast,
survive being averaged).

Everything a task plugin needs is in this module, against xbench's public API only:

- options: a dataclass whose fields carry a default, help and the values they allow; it
  inherits the options every task shares (:class:`xbench.LoaderOptions`: ``task.batch_size``,
  ``task.eval_batch_size``, ``task.num_workers``, ``task.max_target_tokens``;
  :class:`xbench.SplitOptions` as ``task.data``: ``seed``, ``train_size``, ``val_size``,
  ``test_size``), with its own defaults through :func:`xbench.with_default`;
- data: examples drawn from a seed (evaluation sequences never occur in training), encoded
  once, and the loaders ``options.datamodule(...)`` makes, whose ``collate`` builds the
  batches the task contract describes (``source``, ``target`` = BOS…EOS, ``references``);
- a tokenizer: :class:`xbench.WordTokenizer` over the letters, shared by source and target;
- a frontend: :class:`xbench.TokenFrontend`, the shared embedding plus sinusoidal
  positions (without positions the decoder could not know which letter comes last);
- metrics: a torchmetrics ``MetricCollection``, and the primary metric per example
  (:class:`xbench.ExampleStatistics`), so the leaderboard can compare backends on the same
  test examples;
- ``build_reverse(options) -> Task`` and the ``xbench_register_tasks`` hook.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import torch
import xbench
from torchmetrics import Metric, MetricCollection
from torchmetrics.text import WordErrorRate
from xbench import (
    ExampleStatistics,
    LoaderOptions,
    SplitOptions,
    Task,
    TaskSpec,
    TokenFrontend,
    UserError,
    WordTokenizer,
    option,
    pad,
    with_default,
)

LETTERS = "abcdefghijklmnopqrstuvwxyz"
SPLITS = ("test", "val", "train")  # evaluation splits first: training avoids their sequences


@dataclass
class ReverseData(SplitOptions):
    """The shared split options (``task.data.*``) with this task's defaults."""

    seed: int = with_default(SplitOptions, "seed", 0)
    train_size: int = with_default(SplitOptions, "train_size", 4000)
    val_size: int = with_default(SplitOptions, "val_size", 100)
    test_size: int = with_default(SplitOptions, "test_size", 200)


@dataclass
class ReverseOptions(LoaderOptions):
    mode: str = option(
        "reverse", help="write the letters backwards or copy them", choices=("reverse", "copy")
    )
    letters: int = option(8, help="size of the alphabet", min=2, max=len(LETTERS))
    min_length: int = option(12, help="letters per example, at least", min=1, max=512)
    max_length: int = option(24, help="letters per example, at most", min=1, max=512)
    data: ReverseData = field(default_factory=ReverseData)
    eval_batch_size: int = with_default(LoaderOptions, "eval_batch_size", 200)


def draw_splits(options: ReverseOptions) -> dict[str, list[str]]:
    """Source texts per split; a sequence in the validation or test split never occurs in
    training. Raises UserError when the lengths and alphabet leave too few sequences."""
    if options.min_length > options.max_length:
        raise UserError(
            f"task.min_length={options.min_length} is more than "
            f"task.max_length={options.max_length}"
        )
    data = options.data
    rng = random.Random(data.seed)
    alphabet = LETTERS[: options.letters]
    sizes = {"train": data.train_size, "val": data.val_size, "test": data.test_size}
    splits, held_out = {}, set()
    for split in SPLITS:
        drawn = []
        for _ in range(50 * sizes[split]):  # enough tries unless the space is nearly used up
            length = rng.randint(options.min_length, options.max_length)
            text = " ".join(rng.choice(alphabet) for _ in range(length))
            if text not in held_out:
                drawn.append(text)
            if len(drawn) == sizes[split]:
                break
        else:
            raise UserError(
                f"only {len(drawn)} of task.data.{split}_size={sizes[split]} {split} sequences "
                "differ from the held-out ones; raise task.max_length or task.letters"
            )
        splits[split] = drawn
        if split != "train":
            held_out |= set(drawn)
    return splits


def answer(text: str, mode: str) -> str:
    """The target text of a source text."""
    letters = text.split()
    return " ".join(reversed(letters) if mode == "reverse" else letters)


def encode(
    texts: Sequence[str], tokenizer: WordTokenizer, mode: str, max_target_tokens: int
) -> list[tuple[list[int], list[int], str]]:
    """(source ids, target ids = BOS, letters, EOS, reference text) per example; a target
    keeps at most ``max_target_tokens`` letters (its reference stays whole)."""
    rows = []
    for text in texts:
        target = answer(text, mode)
        letters = tokenizer.encode(target)[:max_target_tokens]
        rows.append(
            (tokenizer.encode(text), [tokenizer.bos_id, *letters, tokenizer.eos_id], target)
        )
    return rows


def collate(batch: list[tuple[list[int], list[int], str]], pad_id: int) -> dict:
    """The batch dict of xbench's task contract."""
    sources, targets, references = zip(*batch, strict=True)
    return {
        "source": pad(sources, pad_id),
        "target": pad(targets, pad_id),
        "references": [[r] for r in references],
    }


def exact_matches(
    predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> list[list[float]]:
    """1.0 where a prediction equals its first reference, else 0.0: their mean is
    ``exact_match``."""
    return [[float(p == refs[0])] for p, refs in zip(predictions, references, strict=True)]


class ExactMatch(Metric):
    """Fraction of predictions equal to their first reference."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> None:
        self.correct += int(sum(row[0] for row in exact_matches(predictions, references)))
        self.total += len(predictions)

    def compute(self) -> torch.Tensor:
        return self.correct.float() / self.total.clamp_min(1)


class LetterErrorRate(WordErrorRate):
    """Edit distance over letters / reference letters (the letters are the words here)."""

    def update(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> None:
        super().update(list(predictions), [refs[0] for refs in references])


def reverse_metrics() -> MetricCollection:
    """``exact_match`` (primary, higher is better) and ``letter_error_rate``."""
    return MetricCollection({"exact_match": ExactMatch(), "letter_error_rate": LetterErrorRate()})


def build_reverse(options: ReverseOptions) -> Task:
    """The task for these options (called once per run)."""
    texts = draw_splits(options)
    tokenizer = WordTokenizer(list(LETTERS[: options.letters]))
    encoded = {
        split: encode(rows, tokenizer, options.mode, options.max_target_tokens)
        for split, rows in texts.items()
    }
    datamodule = options.datamodule(encoded, partial(collate, pad_id=tokenizer.pad_id))
    test = encoded["test"]
    params = dataclasses.asdict(options)
    return Task(
        datamodule=datamodule,
        tokenizer=tokenizer,
        frontend=lambda d_model, embedding: TokenFrontend(embedding, tokenizer.pad_id),
        metrics=reverse_metrics,
        primary_metric="exact_match",
        higher_is_better=True,
        source_length=max(len(source) for source, _, _ in test),
        target_length=max(len(target) for _, target, _ in test),  # BOS and EOS included
        max_new_tokens=min(options.max_length, options.max_target_tokens) + 1,  # letters, EOS
        data_info={
            "source": "embedded",
            "params": params,
            "sizes": {split: len(rows) for split, rows in encoded.items()},
        },
        example_statistics=ExampleStatistics(formula="mean", compute=exact_matches),
    )


@xbench.hookimpl
def xbench_register_tasks(register):
    register(
        TaskSpec(
            name="reverse",
            modality="text",
            build=build_reverse,
            options=ReverseOptions,
            description="Write a letter sequence backwards (example plugin xbench-reverse).",
        )
    )

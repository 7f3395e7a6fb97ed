"""``qa``: extractive reading comprehension; the decoder generates the answer span.

Data: an embedded generator (default; offline, seeded, cached with a checksum), SQuAD
v1.1-format JSON files, or a SQuAD-format dataset through HF ``datasets``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial

import xbench
from xbench.api.errors import UserError
from xbench.api.options import option
from xbench.api.task import Task, TaskSpec
from xbench.taskkit.cache import cached_json
from xbench.taskkit.data import split_val_test
from xbench.taskkit.hf import HFSourceOptions
from xbench.taskkit.options import SplitOptions, TextLoaderOptions, data_source, with_default
from xbench.taskkit.text import TokenFrontend, WordTokenizer
from xbench_tasks.qa.data import EncodedQA, collate_qa
from xbench_tasks.qa.examples import QAExample
from xbench_tasks.qa.generator import (
    GENERATOR_VERSION,
    NAME_STYLES,
    QAGeneratorOptions,
    full_names_needed,
    generate_split,
)
from xbench_tasks.qa.metrics import QA_STATISTICS, qa_metrics
from xbench_tasks.qa.truncation import truncation_warning


@dataclass
class QADataOptions(SplitOptions, HFSourceOptions):
    source: str = data_source("squad_json", "hf")
    # embedded generator
    num_facts: int = option(
        8, help="facts per context (context length ~7 tokens per fact)", min=1, max=2000
    )
    distractors: int = option(2, help="other facts about the questioned person", min=0, max=4)
    two_hop: float = option(
        0.0, help="fraction of two-hop questions (employer's city)", min=0.0, max=1.0
    )
    names: str = option(
        "auto",
        help="auto: first names, first and last names in long contexts | coined: invented "
        "one-word names at every length",
        choices=NAME_STYLES,
    )
    filler_words: int = option(
        0,
        help="words of entity-free filler sentences spread between the facts of a val/test "
        "context (a haystack: longer sources, as many competing facts)",
        min=0,
        max=20000,
    )
    # length curriculum: training contexts of other lengths than the evaluated ones
    train_filler_words: int = option(
        0,
        help="most filler words of a training context; each draws 0 … this many uniformly",
        min=0,
        max=20000,
    )
    train_max_facts: int = option(
        0,
        help="most facts per training context; 0: num_facts (val/test keep num_facts)",
        min=0,
        max=2000,
    )
    train_min_facts: int = option(
        0,
        help="fewest facts per training context, drawn uniformly up to train_max_facts; "
        "0: train_max_facts",
        min=0,
        max=2000,
    )
    # real data
    train_path: str | None = option(None, help="squad_json: SQuAD v1.1 training file")
    eval_path: str | None = option(
        None, help="squad_json: SQuAD v1.1 evaluation file (first half val, second half test)"
    )
    # SQuAD on the hub has no test split: its validation split is halved
    hf_test_split: str | None = with_default(HFSourceOptions, "hf_test_split", None)
    max_vocab: int = option(30000, help="word vocabulary cap for real data", min=16)

    def __post_init__(self) -> None:
        if self.train_facts[0] > self.train_facts[1]:
            raise ValueError(
                f"train_min_facts={self.train_min_facts} exceeds the training contexts' most "
                f"facts {self.train_facts[1]} (train_max_facts, else num_facts)"
            )

    @property
    def train_facts(self) -> tuple[int, int]:
        """Fewest and most facts of a training context (the curriculum's lengths)."""
        most = self.train_max_facts or self.num_facts
        return self.train_min_facts or most, most


@dataclass
class QAOptions(TextLoaderOptions):
    data: QADataOptions = field(default_factory=QADataOptions)
    max_target_tokens: int = with_default(TextLoaderOptions, "max_target_tokens", 16)  # answers


def load_examples(data: QADataOptions) -> tuple[dict[str, list[QAExample]], dict]:
    """Examples per split and what identifies their source (for the run record)."""
    if data.source == "embedded":
        return _embedded(data)
    from xbench_tasks.qa import squad

    if data.source == "squad_json":
        if not data.train_path or not data.eval_path:
            raise UserError(
                "task.data.source=squad_json needs task.data.train_path and "
                "task.data.eval_path (SQuAD v1.1 JSON files)"
            )
        train = squad.load_squad_json(data.train_path)
        val, test = split_val_test(squad.load_squad_json(data.eval_path), data.eval_path)
        info = {"source": "squad_json", "train_path": data.train_path, "eval_path": data.eval_path}
        return {"train": train, "val": val, "test": test}, info
    splits = data.load_hf_splits(
        lambda split: squad.load_squad_hf(data.hf_name, split, data.hf_config)
    )
    return splits, {"source": "hf", "name": data.hf_name, "config": data.hf_config}


def split_generators(data: QADataOptions) -> dict[str, QAGeneratorOptions]:
    """The generator of each split: val and test at ``num_facts``, train at the curriculum's
    ``train_min_facts`` … ``train_max_facts``. Every split uses the name style of the
    longest contexts, so short training contexts name people as long test ones do."""
    fewest, most = data.train_facts
    full_names = data.names == "auto" and full_names_needed(max(most, data.num_facts))
    evaluation = QAGeneratorOptions(
        data.num_facts,
        data.distractors,
        data.two_hop,
        data.seed,
        full_names=full_names,
        names=data.names,
        filler_words=data.filler_words,
    )
    train = dataclasses.replace(
        evaluation,
        num_facts=most,
        min_facts=fewest if fewest < most else 0,
        filler_words=data.train_filler_words,
        vary_filler=True,
    )
    return {"train": train, "val": evaluation, "test": evaluation}


def _embedded(data: QADataOptions) -> tuple[dict[str, list[QAExample]], dict]:
    generators = split_generators(data)
    sizes = {"train": data.train_size, "val": data.val_size, "test": data.test_size}

    def build() -> dict:
        splits, seen = {}, set()
        for split in ("test", "val", "train"):  # evaluation splits first; train avoids them
            splits[split] = generate_split(generators[split], split, sizes[split], exclude=seen)
            seen |= {(e.context, e.question) for e in splits[split]}
        return {s: [dataclasses.asdict(e) for e in ex] for s, ex in splits.items()}

    params = {
        "generator": dataclasses.asdict(generators["test"]),
        "train_generator": dataclasses.asdict(generators["train"]),
        "sizes": sizes,
        "version": GENERATOR_VERSION,
    }
    raw, checksum = cached_json("qa", params, build)
    splits = {
        s: [
            QAExample(e["id"], e["context"], e["question"], tuple(e["answers"]), e["answer_start"])
            for e in rows
        ]
        for s, rows in raw.items()
    }
    return splits, {"source": "embedded", "params": params, "checksum": checksum}


def build_qa(options: QAOptions) -> Task:
    splits, info = load_examples(options.data)
    train_texts = [t for e in splits["train"] for t in (e.context, e.question, *e.answers)]
    tokenizer = WordTokenizer.from_texts(train_texts, max_size=options.data.max_vocab)
    encoded = {
        s: EncodedQA(ex, tokenizer, options.max_source_tokens, options.max_target_tokens)
        for s, ex in splits.items()
    }
    datamodule = options.datamodule(encoded, partial(collate_qa, pad_id=tokenizer.pad_id))
    info |= {"sizes": {s: len(ex) for s, ex in splits.items()}, "vocab_size": tokenizer.vocab_size}
    lengths = [len(src) for src, *_ in encoded["test"].items]
    limit = options.max_source_tokens
    cuts = (truncation_warning(s, splits[s], limit) for s in ("test", "val", "train"))
    return Task(
        datamodule=datamodule,
        tokenizer=tokenizer,
        frontend=lambda d_model, embedding: TokenFrontend(embedding, tokenizer.pad_id),
        metrics=qa_metrics,
        primary_metric="f1",
        higher_is_better=True,
        source_length=max(lengths),
        target_length=max(len(q) + len(t) for _, q, t, *_ in encoded["test"].items),
        max_new_tokens=options.max_target_tokens + 1,
        data_info=info,
        data_warnings=[line for line in cuts if line],
        example_statistics=QA_STATISTICS,
    )


@xbench.hookimpl
def xbench_register_tasks(register):
    register(
        TaskSpec(
            name="qa",
            modality="text",
            build=build_qa,
            options=QAOptions,
            description="Reading comprehension: generate the answer span found in the context.",
        )
    )

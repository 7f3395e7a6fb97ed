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
from xbench_tasks.qa.generator import GENERATOR_VERSION, QAGeneratorOptions, generate_split
from xbench_tasks.qa.metrics import QA_STATISTICS, qa_metrics


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
    # real data
    train_path: str | None = option(None, help="squad_json: SQuAD v1.1 training file")
    eval_path: str | None = option(
        None, help="squad_json: SQuAD v1.1 evaluation file (first half val, second half test)"
    )
    # SQuAD on the hub has no test split: its validation split is halved
    hf_test_split: str | None = with_default(HFSourceOptions, "hf_test_split", None)
    max_vocab: int = option(30000, help="word vocabulary cap for real data", min=16)


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


def _embedded(data: QADataOptions) -> tuple[dict[str, list[QAExample]], dict]:
    generator = QAGeneratorOptions(data.num_facts, data.distractors, data.two_hop, data.seed)
    sizes = {"train": data.train_size, "val": data.val_size, "test": data.test_size}

    def build() -> dict:
        splits, seen = {}, set()
        for split in ("test", "val", "train"):  # evaluation splits first; train avoids them
            splits[split] = generate_split(generator, split, sizes[split], exclude=seen)
            seen |= {(e.context, e.question) for e in splits[split]}
        return {s: [dataclasses.asdict(e) for e in ex] for s, ex in splits.items()}

    params = {
        "generator": dataclasses.asdict(generator),
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

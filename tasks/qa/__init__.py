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
from xbench.taskkit.data import SplitDataModule
from xbench.taskkit.text import TokenFrontend, WordTokenizer
from xbench_tasks.qa.data import EncodedQA, collate_qa
from xbench_tasks.qa.examples import QAExample
from xbench_tasks.qa.generator import GENERATOR_VERSION, QAGeneratorOptions, generate_split
from xbench_tasks.qa.metrics import qa_metrics


@dataclass
class QADataOptions:
    source: str = option(
        "embedded", help="embedded | squad_json | hf", choices=("embedded", "squad_json", "hf")
    )
    # embedded generator
    num_facts: int = option(
        8, help="facts per context (context length ~7 tokens per fact)", min=1, max=2000
    )
    distractors: int = option(2, help="other facts about the questioned person", min=0, max=4)
    two_hop: float = option(
        0.0, help="fraction of two-hop questions (employer's city)", min=0.0, max=1.0
    )
    seed: int = option(1234, help="seed of the embedded generator", min=0)
    train_size: int = option(20000, help="embedded training examples", min=1)
    val_size: int = option(500, help="embedded validation examples", min=1)
    test_size: int = option(1000, help="embedded test examples", min=1)
    # real data
    train_path: str | None = option(None, help="squad_json: SQuAD v1.1 training file")
    eval_path: str | None = option(
        None, help="squad_json: SQuAD v1.1 evaluation file (first half val, second half test)"
    )
    hf_name: str | None = option(None, help="hf: dataset name, e.g. squad")
    hf_config: str | None = option(None, help="hf: dataset configuration")
    hf_train_split: str = option("train", help="hf: training split")
    hf_eval_split: str = option("validation", help="hf: evaluation split (halved: val, test)")
    max_vocab: int = option(30000, help="word vocabulary cap for real data", min=16)


@dataclass
class QAOptions:
    data: QADataOptions = field(default_factory=QADataOptions)
    batch_size: int = option(64, help="training batch size", min=1)
    eval_batch_size: int = option(250, help="validation/test batch size", min=1)
    max_source_tokens: int = option(1024, help="longer sources are truncated", min=8)
    max_answer_tokens: int = option(16, help="longer answers are truncated", min=1)
    num_workers: int = option(0, help="DataLoader worker processes", min=0)


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
        train, evaluation = (
            squad.load_squad_json(data.train_path),
            squad.load_squad_json(data.eval_path),
        )
        info = {"source": "squad_json", "train_path": data.train_path, "eval_path": data.eval_path}
    else:
        if not data.hf_name:
            raise UserError("task.data.source=hf needs task.data.hf_name (e.g. squad)")
        train = squad.load_squad_hf(data.hf_name, data.hf_train_split, data.hf_config)
        evaluation = squad.load_squad_hf(data.hf_name, data.hf_eval_split, data.hf_config)
        info = {"source": "hf", "name": data.hf_name, "config": data.hf_config}
    if len(evaluation) < 2:
        raise UserError("the QA evaluation data needs at least 2 questions (val and test)")
    half = len(evaluation) // 2
    return {"train": train, "val": evaluation[:half], "test": evaluation[half:]}, info


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
        s: [QAExample(e["id"], e["context"], e["question"], tuple(e["answers"])) for e in rows]
        for s, rows in raw.items()
    }
    return splits, {"source": "embedded", "params": params, "checksum": checksum}


def build_qa(options: QAOptions) -> Task:
    splits, info = load_examples(options.data)
    train_texts = [t for e in splits["train"] for t in (e.context, e.question, *e.answers)]
    tokenizer = WordTokenizer.from_texts(train_texts, max_size=options.data.max_vocab)
    encoded = {
        s: EncodedQA(ex, tokenizer, options.max_source_tokens, options.max_answer_tokens)
        for s, ex in splits.items()
    }
    datamodule = SplitDataModule(
        encoded,
        partial(collate_qa, pad_id=tokenizer.pad_id),
        options.batch_size,
        options.eval_batch_size,
        options.num_workers,
    )
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
        target_length=max(len(q) + len(t) for _, q, t, _ in encoded["test"].items),
        max_new_tokens=options.max_answer_tokens + 1,
        data_info=info,
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

"""The embedded QA generator and the qa task's data, metrics and loaders."""

from __future__ import annotations

import json
import re

import pytest
import torch

from xbench.api.errors import UserError
from xbench.taskkit.data import pad
from xbench_tasks.qa import QADataOptions, QAOptions, build_qa, load_examples
from xbench_tasks.qa.generator import QAGeneratorOptions, generate_split
from xbench_tasks.qa.metrics import qa_metrics

SMALL = QADataOptions(train_size=300, val_size=50, test_size=50)


def test_generator_is_deterministic_and_seed_dependent():
    options = QAGeneratorOptions(num_facts=8, distractors=2, two_hop=0.3, seed=7)
    first = generate_split(options, "train", 50)
    assert first == generate_split(options, "train", 50)
    other = QAGeneratorOptions(num_facts=8, distractors=2, two_hop=0.3, seed=8)
    assert first != generate_split(other, "train", 50)


@pytest.mark.parametrize("two_hop", [0.0, 1.0])
def test_every_answer_is_a_span_of_its_context(two_hop):
    options = QAGeneratorOptions(num_facts=10, distractors=3, two_hop=two_hop, seed=1)
    for example in generate_split(options, "test", 100):
        assert re.search(rf"\b{re.escape(example.answers[0])}\b", example.context)
        assert example.question.endswith("?")
        if two_hop:
            assert example.question.startswith("where is the employer of")


def test_the_question_needs_the_context_entity():
    """Other people's facts of the same relation appear, so the name must be matched."""
    options = QAGeneratorOptions(num_facts=40, distractors=4, two_hop=0.0, seed=3)
    examples = generate_split(options, "train", 50)
    ambiguous = 0
    for ex in examples:
        name = ex.question.split()[-2] if "how old" in ex.question else None
        if name:
            ages = re.findall(r"(\w+) is (\d+) years old", ex.context)
            assert (name, ex.answers[0]) in ages
            ambiguous += len(ages) > 1
    assert ambiguous > 0


@pytest.mark.parametrize("num_facts", [4, 40, 400])
def test_context_length_follows_num_facts(num_facts):
    options = QAGeneratorOptions(num_facts=num_facts, distractors=2, two_hop=0.0, seed=0)
    example = generate_split(options, "val", 1)[0]
    facts = example.context.count(" .")
    assert facts == pytest.approx(num_facts, abs=2)


def test_splits_are_disjoint_and_sized():
    splits, info = load_examples(SMALL)
    assert {k: len(v) for k, v in splits.items()} == {"train": 300, "val": 50, "test": 50}
    keys = {s: {(e.context, e.question) for e in ex} for s, ex in splits.items()}
    assert not keys["train"] & keys["test"]
    assert not keys["train"] & keys["val"]
    assert not keys["val"] & keys["test"]
    assert info["source"] == "embedded" and len(info["checksum"]) == 64


def test_embedded_data_is_cached_and_a_corrupt_cache_is_rebuilt(tmp_path):
    first, info = load_examples(SMALL)
    files = list((tmp_path / "cache" / "qa").glob("*.json"))
    assert len(files) == 1
    files[0].write_text(files[0].read_text().replace("lives in", "lived in"))
    again, info_again = load_examples(SMALL)
    assert again == first and info_again["checksum"] == info["checksum"]
    assert "lived in" not in files[0].read_text()


def test_built_task_batches_follow_the_contract():
    task = build_qa(QAOptions(data=SMALL, batch_size=8))
    batch = next(iter(task.datamodule.train_dataloader()))
    tok = task.tokenizer
    assert batch["source"].shape[0] == batch["target"].shape[0] == batch["prompt"].shape[0] == 8
    assert (batch["target"][:, 0] == tok.bos_id).all()
    assert ((batch["target"] == tok.eos_id).sum(1) == 1).all()
    assert (batch["prompt"][:, -1] != tok.pad_id).all(), "prompts are left-padded"
    answers = [tok.decode(row[1:].tolist()) for row in batch["target"]]
    assert answers == [refs[0] for refs in batch["references"]]
    embedding = torch.nn.Embedding(tok.vocab_size, 16)
    x, mask = task.frontend(16, embedding)(batch["source"])
    assert x.shape == (*batch["source"].shape, 16)
    assert torch.equal(mask, batch["source"] != tok.pad_id)
    assert task.primary_metric == "f1" and task.higher_is_better
    assert task.source_length >= batch["source"].shape[1] - 5


def test_pad_left_and_right():
    assert pad([[1, 2], [3]], 0).tolist() == [[1, 2], [3, 0]]
    assert pad([[1, 2], [3]], 0, left=True).tolist() == [[1, 2], [0, 3]]


def test_metrics_are_squad_em_and_f1_as_fractions():
    metrics = qa_metrics()
    metrics.update(["oslo", "12 may", "the paris"], [["oslo"], ["12 may 1990"], ["paris"]])
    scores = {k: float(v) for k, v in metrics.compute().items()}
    assert scores["exact_match"] == pytest.approx(2 / 3)  # articles are ignored (SQuAD)
    assert scores["f1"] == pytest.approx((1 + 0.8 + 1) / 3)


def _squad_file(path, questions):
    context = "Ada Lovelace wrote the first program in 1843 in London ."
    qas = [
        {"id": f"q{i}", "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
        for i, (q, a) in enumerate(questions)
    ]
    path.write_text(
        json.dumps(
            {
                "version": "1.1",
                "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}],
            }
        )
    )
    return path


def test_squad_json_source_builds_a_task(tmp_path):
    train = _squad_file(
        tmp_path / "train.json", [("Who wrote it?", "Ada Lovelace"), ("When?", "1843")]
    )
    dev = _squad_file(tmp_path / "dev.json", [("Where?", "London"), ("When?", "1843")])
    data = QADataOptions(source="squad_json", train_path=str(train), eval_path=str(dev))
    task = build_qa(QAOptions(data=data, batch_size=2))
    assert task.data_info["sizes"] == {"train": 2, "val": 1, "test": 1}
    batch = next(iter(task.datamodule.test_dataloader()))
    assert batch["references"] == [["1843"]]


def test_squad_json_source_needs_both_paths(tmp_path):
    with pytest.raises(UserError, match="train_path"):
        build_qa(QAOptions(data=QADataOptions(source="squad_json")))

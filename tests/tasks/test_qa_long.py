"""QA's long tier: the length curriculum, coined names, the truncation warning and the
tier presets (configs/tier_task/*_qa.yaml)."""

from __future__ import annotations

import re

import pytest
from helpers import composed_config
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from xbench.api.errors import UserError
from xbench.api.options import build_options
from xbench.config.compose import store_plugin_configs
from xbench.registry import get_registry
from xbench.run.plan import plan_run
from xbench.run.runner import execute
from xbench.taskkit.text import split_words
from xbench_tasks.qa import QADataOptions, QAOptions, build_qa, load_examples
from xbench_tasks.qa.filler import FILLER_WORDS
from xbench_tasks.qa.generator import (
    ANIMALS,
    CITIES,
    COINED_NAMES,
    MONTHS,
    NAMES,
    ORG_KINDS,
    ORG_STEMS,
    QAGeneratorOptions,
    generate_split,
)


def _facts(context: str) -> int:
    return context.count(" .") + context.endswith(".") - context.endswith(" .")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"train_min_facts": 9, "train_max_facts": 6}, "train_min_facts=9 exceeds"),
        ({"num_facts": 5, "train_min_facts": 6}, "train_min_facts=6 exceeds"),
        ({"train_max_facts": 2001}, "train_max_facts"),
        ({"train_min_facts": -1}, "train_min_facts"),
        ({"names": "nicknames"}, "names"),
    ],
)
def test_bad_curriculum_and_name_options_are_one_line(values, message):
    with pytest.raises(UserError, match=message):
        build_options(QADataOptions, values, "task.data")


def test_the_curriculum_trains_on_its_lengths_and_evaluates_on_num_facts():
    data = QADataOptions(
        num_facts=30, train_min_facts=4, train_max_facts=10, train_size=200, val_size=20,
        test_size=20,
    )  # fmt: skip
    splits, info = load_examples(data)

    train = [_facts(e.context) for e in splits["train"]]
    assert min(train) == 4 and max(train) == 10
    assert len(set(train)) == 7, "every length of the range is drawn"
    assert {_facts(e.context) for s in ("val", "test") for e in splits[s]} == {30}
    assert info["params"]["train_generator"]["min_facts"] == 4
    assert info["params"]["train_generator"]["num_facts"] == 10


def test_curriculum_options_are_part_of_the_cache_key():
    base = QADataOptions(num_facts=20, train_size=50, val_size=10, test_size=10)
    _, plain = load_examples(base)
    _, shorter = load_examples(QADataOptions(**{**vars(base), "train_max_facts": 6}))

    assert plain["checksum"] != shorter["checksum"]
    assert plain["params"]["generator"] == shorter["params"]["generator"]


def test_short_training_contexts_name_people_as_the_long_test_contexts_do():
    data = QADataOptions(num_facts=200, train_max_facts=8, train_size=30, val_size=5, test_size=5)
    splits, _ = load_examples(data)

    for split in ("train", "test"):
        for example in splits[split]:
            people = re.findall(r"(\w+) (\w+) (?:lives in|owns)", example.context)
            assert people and all(first in NAMES and last in NAMES for first, last in people)


def test_coined_names_are_one_token_and_unique_per_context():
    options = QAGeneratorOptions(num_facts=400, distractors=2, two_hop=0.0, seed=2, names="coined")
    for example in generate_split(options, "test", 5):
        people = re.findall(r"(\w+) (?:lives in|owns|works for) ", example.context)
        assert people and set(people) <= set(COINED_NAMES)
        lives = re.findall(r"(\w+) lives in", example.context)
        assert len(lives) == len(set(lives)), "one person per name"
        assert len(split_words(example.question)) <= 8


def _answers_cut(examples, limit: int) -> int:
    """Examples whose first ``limit`` words no longer contain the answer, counted on text."""
    return sum(
        f" {example.answers[0]} " not in " " + " ".join(split_words(example.context)[:limit]) + " "
        for example in examples
    )


def test_the_truncation_warning_counts_the_cut_answers():
    data = QADataOptions(num_facts=150, train_size=20, val_size=10, test_size=40)
    splits, _ = load_examples(data)

    task = build_qa(QAOptions(data=data, max_source_tokens=400))
    expected = _answers_cut(splits["test"], 400)

    assert 0 < expected < 40
    test_line = next(line for line in task.data_warnings if "test contexts" in line)
    assert test_line.startswith(
        f"max_source_tokens=400 cut the answer out of {expected} of 40 test contexts "
        f"({expected / 40:.0%})"
    )
    assert "of the tokens of 40 (100%)" in test_line
    assert len(task.data_warnings) == 3, "one line per split that lost text"


def test_no_warning_when_nothing_is_cut():
    data = QADataOptions(num_facts=150, train_size=20, val_size=10, test_size=40)
    assert build_qa(QAOptions(data=data, max_source_tokens=2048)).data_warnings == []


@pytest.fixture(scope="module")
def configs():
    """The plugins' config nodes, stored once so the primary config composes."""
    store_plugin_configs(get_registry())


def _tier_task(tier: str) -> dict:
    with initialize_config_module(config_module="xbench_configs", version_base="1.3"):
        config = compose("xbench", overrides=[f"tier={tier}", "task=qa"])
    return OmegaConf.to_container(config.task, resolve=True)


def test_the_long_tier_tests_on_1500_token_contexts_and_cuts_nothing(configs):
    node = _tier_task("long")
    node.pop("name")
    node["data"] |= {"train_size": 50, "val_size": 5, "test_size": 40}
    task = build_qa(build_options(QAOptions, node, "task"))

    test_lengths = [len(src) for src, *_ in task.datamodule.splits["test"].items]
    assert min(test_lengths) >= 1500
    assert task.data_warnings == []
    train_lengths = [len(src) for src, *_ in task.datamodule.splits["train"].items]
    assert max(train_lengths) < 200, "the curriculum trains on short contexts"


def test_the_xl_tier_is_several_times_longer_than_long(configs):
    long_node, xl_node = _tier_task("long"), _tier_task("xl")
    assert xl_node["data"]["filler_words"] >= 4 * long_node["data"]["filler_words"]
    assert xl_node["data"]["num_facts"] == long_node["data"]["num_facts"], "as many compete"
    tokens_per_fact = 6.5  # coined names: about six tokens per fact, never more than 6.5
    longest = xl_node["data"]["filler_words"] + 7 + xl_node["data"]["num_facts"] * tokens_per_fact
    assert xl_node["max_source_tokens"] >= longest


@pytest.mark.slow
def test_a_long_tier_qa_cell_runs_end_to_end(tmp_path):
    """Smoke case of the long tier (one batch each): sparse is dense on the short training
    contexts and sparse on the 1500-token test contexts."""
    sizes = ["task.data.train_size=64", "task.data.val_size=8", "task.data.test_size=8"]
    overrides = ["tier=long", "task=qa", "backend=sparse", "trainer=debug", "logger=none"]
    config = composed_config([*overrides, *sizes])
    result = execute(plan_run(config, get_registry()), tmp_path)

    assert result.status == "ok", result.error
    assert result.tier == "long" and result.task.warnings == []
    measured = result.efficiency.cross_attention
    assert measured.prefill.shape.nk >= 1500
    assert measured.train.describe["kept_fraction"] == 1.0
    assert measured.prefill.describe["kept_fraction"] < 0.2


def _filler(context: str) -> list[str]:
    return [s for s in context.split(" . ") if s.startswith("the ")]


def test_filler_names_nothing_a_fact_or_question_uses():
    fact_words = set(COINED_NAMES) | set(NAMES) | set(CITIES) | set(ORG_STEMS) | set(ORG_KINDS)
    fact_words |= set(ANIMALS) | set(MONTHS)
    assert FILLER_WORDS.isdisjoint(fact_words)
    assert not any(word.isdigit() for word in FILLER_WORDS)


def test_a_haystack_keeps_the_facts_and_points_at_the_answer():
    plain = QAGeneratorOptions(num_facts=8, distractors=2, two_hop=0.3, seed=4, names="coined")
    hay = QAGeneratorOptions(**{**vars(plain), "filler_words": 600})
    for example in generate_split(hay, "test", 20):
        assert 7 * len(_filler(example.context)) >= 600
        facts = [s for s in example.context.split(" . ") if not s.startswith("the ")]
        assert len(facts) == 8
        start = example.answer_start
        assert example.context[start : start + len(example.answers[0])] == example.answers[0]
    assert not any(_filler(e.context) for e in generate_split(plain, "test", 20))


def test_training_contexts_draw_their_filler_and_evaluation_ones_have_it_all():
    data = QADataOptions(
        num_facts=6, filler_words=300, train_filler_words=100, names="coined", train_size=100,
        val_size=10, test_size=10,
    )  # fmt: skip
    splits, info = load_examples(data)

    train = [7 * len(_filler(e.context)) for e in splits["train"]]
    assert min(train) < 30 and max(train) >= 100 and max(train) < 110
    assert all(7 * len(_filler(e.context)) >= 300 for e in splits["test"] + splits["val"])
    assert info["params"]["train_generator"]["filler_words"] == 100


@pytest.mark.parametrize("name", ["filler_words", "train_filler_words"])
@pytest.mark.parametrize("value", [-1, 20001])
def test_filler_options_out_of_range_are_one_line(name, value):
    with pytest.raises(UserError, match=name):
        build_options(QADataOptions, {name: value}, "task.data")

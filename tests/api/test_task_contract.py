"""The task contract's own checks: what ``Task.check`` refuses (the runner calls it right
after ``build``), and that the runner stops on it with one line before training."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from helpers import SMALL_QA, composed_config

import xbench
from xbench.api.errors import PluginError
from xbench.api.task import MODALITIES, ExampleStatistics, Modality, TaskSpec
from xbench.registry import load_registry
from xbench.run.plan import plan_run
from xbench.run.runner import execute
from xbench_tasks.qa import QADataOptions, QAOptions, build_qa

TINY_QA = QAOptions(data=QADataOptions(train_size=16, val_size=4, test_size=4), batch_size=4)


@pytest.fixture(scope="module")
def qa_task():
    return build_qa(TINY_QA)


def test_a_built_in_task_passes(qa_task):
    qa_task.check("qa")  # "f1" is a key of what its metrics compute, not of the collection


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"primary_metric": "bleu"},
            "primary_metric 'bleu' is not a key of its metrics(); they are: exact_match, f1",
        ),
        ({"source_length": 0}, "source_length must be an int >= 1, got 0"),
        ({"target_length": 2.5}, "target_length must be an int >= 1, got 2.5"),
        ({"data_info": {"size": math.nan}}, "data_info must be JSON"),
        ({"data_info": {"path": object()}}, "data_info must be JSON"),
        (
            {"example_statistics": ExampleStatistics(formula="median", compute=lambda p, r: [])},
            "example_statistics.formula 'median' is not one of mean, ratio, bleu, chrf",
        ),
        (
            {"example_statistics": ExampleStatistics(formula="mean", compute=lambda p, r: [])},
            "example_statistics.compute gave 0 rows for 1 example",
        ),
    ],
)
def test_a_task_breaking_the_contract_is_one_line_naming_it(qa_task, change, message):
    with pytest.raises(PluginError) as info:
        dataclasses.replace(qa_task, **change).check("mine")

    assert str(info.value).startswith("task 'mine': ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_modalities_are_documented_one_by_one():
    assert tuple(MODALITIES) == ("text", "audio", "image") == Modality.__args__
    assert all(len(what) > 20 for what in MODALITIES.values())


class _WrongMetric:
    @xbench.hookimpl
    def xbench_register_tasks(self, register):
        register(TaskSpec(name="qa_wrong", modality="text", build=self.build, options=QAOptions))

    @staticmethod
    def build(options):
        return dataclasses.replace(build_qa(options), primary_metric="accuracy")


def test_the_runner_refuses_a_wrong_primary_metric_before_training(tmp_path):
    registry = load_registry(extra_plugins=[("qa_wrong", _WrongMetric())])
    config = composed_config(["task=qa_wrong", "trainer=debug", "logger=none", *SMALL_QA], registry)

    with pytest.raises(PluginError, match=r"task 'qa_wrong': primary_metric 'accuracy'"):
        execute(plan_run(config, registry), tmp_path)

    record = json.loads((tmp_path / "result.json").read_text())
    assert record["status"] == "failed" and "primary_metric 'accuracy'" in record["error"]

"""What a run leaves beside its record: the task's artifacts and readable samples."""

from __future__ import annotations

import dataclasses
import logging

from helpers import SMALL_QA, composed_config

import xbench
from xbench.api.task import TaskSpec
from xbench.registry import load_registry
from xbench.run.plan import plan_run
from xbench.run.runner import execute
from xbench_tasks.qa import QAOptions, build_qa

STEPS = ["trainer.max_steps=4", "trainer.val_check_interval=2", "logger=none", *SMALL_QA]


class _QAWithVocabulary:
    """The qa task, plus its vocabulary written to a file as an artifact."""

    def __init__(self, folder):
        self.folder = folder

    @xbench.hookimpl
    def xbench_register_tasks(self, register):
        register(
            TaskSpec(
                name="qa_vocab",
                modality="text",
                build=self.build,
                options=QAOptions,
                description="qa with an artifact",
            )
        )

    def build(self, options):
        task = build_qa(options)
        vocabulary = self.folder / "vocabulary.txt"
        vocabulary.write_text("\n".join(task.tokenizer.words))
        return dataclasses.replace(task, artifacts={"vocabulary.txt": vocabulary})


def test_task_artifacts_are_copied_into_the_run_directory(tmp_path):
    registry = load_registry(extra_plugins=[("qa_vocab", _QAWithVocabulary(tmp_path))])
    config = composed_config(["task=qa_vocab", *STEPS], registry)
    result = execute(plan_run(config, registry), tmp_path / "run")
    assert result.status == "ok", result.error
    copied = tmp_path / "run" / "artifacts" / "vocabulary.txt"
    assert copied.read_text() == (tmp_path / "vocabulary.txt").read_text()
    assert result.task.artifacts == {"vocabulary.txt": str(copied)}


def test_each_validation_shows_sample_outputs_with_references(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    registry = load_registry()
    result = execute(plan_run(composed_config(STEPS, registry), registry), tmp_path)
    assert result.status == "ok", result.error
    shown = [r.getMessage() for r in caplog.records if "validation samples" in r.getMessage()]
    assert [m.splitlines()[0] for m in shown] == [
        "step 2: validation samples",
        "step 4: validation samples",
    ]
    assert shown[0].count("  output: ") == shown[0].count("  ref:    ") == 5
    assert len(result.quality.samples) == 5

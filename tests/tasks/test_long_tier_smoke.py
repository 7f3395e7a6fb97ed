"""The long tier of translation, speech_to_text and captioning: each preset composes, builds
sources of at least 1500 encoder keys, cuts nothing and runs one batch end to end (fewer
examples than the preset, the same lengths)."""

from __future__ import annotations

import pytest
from helpers import composed_config

from xbench.registry import get_registry
from xbench.run.plan import plan_run
from xbench.run.runner import execute

FEWER = {
    "translation": ["task.data.train_size=8", "task.data.test_size=2"],
    "speech_to_text": ["task.data.train_size=8", "task.data.val_size=1", "task.data.test_size=1"],
    "captioning": ["task.data.train_size=8", "task.data.val_size=2", "task.data.test_size=2"],
}


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(FEWER))
def test_the_long_tier_runs_with_sources_of_at_least_1500_keys(tmp_path, task):
    overrides = ["tier=long", f"task={task}", "trainer=debug", "logger=none", *FEWER[task]]
    result = execute(plan_run(composed_config(overrides), get_registry()), tmp_path)
    assert result.status == "ok", result.error
    assert result.tier == "long" and result.model.settings["encoder_window"] == 64
    assert result.task.source_length >= 1500
    assert result.task.warnings == []

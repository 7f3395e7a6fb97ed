"""A run keeps every test example's prediction, references and statistics beside its record."""

from __future__ import annotations

import pytest
from helpers import SMALL_QA, composed_config

from xbench.leaderboard.board import build_leaderboard
from xbench.records.examples import EXAMPLES_FILE, ExampleScores
from xbench.records.store import find_results
from xbench.registry import load_registry
from xbench.run.plan import plan_run
from xbench.run.runner import execute

STEPS = ["trainer.max_steps=4", "trainer.val_check_interval=2", "logger=none", *SMALL_QA]


def test_the_sidecar_holds_every_test_example_and_rebuilds_the_primary_metric(tmp_path):
    registry = load_registry()
    for backend in ("flash", "uniform"):
        config = composed_config([f"backend={backend}", *STEPS], registry)
        result = execute(plan_run(config, registry), tmp_path / backend)
        assert result.status == "ok", result.error
        assert result.quality.test_examples == 16
        assert result.quality.examples_file == EXAMPLES_FILE
        scores = ExampleScores.load(tmp_path / backend / EXAMPLES_FILE)
        assert len(scores.examples) == 16 and scores.formula == "mean"
        assert scores.value == pytest.approx(result.quality.primary, abs=1e-6)
        assert all(e.references for e in scores.examples)

    (board,) = build_leaderboard(find_results([tmp_path]))
    uniform = next(r for r in board.rows if r.backend == "uniform")
    assert uniform.reference == "flash" and uniform.difference is not None
    assert uniform.difference.examples == 16
    assert len(board.verdicts) == 1

"""Resume: a finished cell is found by config hash, version, code and inputs before any
data is built, and a killed sweep re-run re-uses every cell that had finished."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from helpers import SMALL_QA, composed_config

from xbench import __version__
from xbench.api.errors import UserError
from xbench.records.examples import EXAMPLES_FILE, ExampleScores
from xbench.records.result import (
    BackendInfo,
    ModelInfo,
    Revision,
    RunResult,
    TaskFacts,
    config_hash,
)
from xbench.registry import get_registry
from xbench.run.plan import plan_run
from xbench.run.resume import finished_record, reuse, wants_resume
from xbench.run.revision import inputs_hash, run_revision, source_hash
from xbench_tasks.qa import QAOptions


def planned(*overrides: str):
    return plan_run(composed_config(["backend=naive", "logger=none", *overrides]), get_registry())


def record_of(plan, **changes) -> RunResult:
    """The record ``execute`` would write for ``plan`` (identity fields only)."""
    fields = dict(
        run_id="naive-qa-1234",
        config_hash=config_hash(plan.config),
        xbench_version=__version__,
        git_sha=None,
        backend=BackendInfo(name="naive", exact=True),
        task=TaskFacts(name="qa"),
        model=ModelInfo(),
        seed=plan.config["seed"],
        config=plan.config,
        revision=run_revision(plan.backend, plan.task, plan.task_options),
    )
    return RunResult(**(fields | changes))


@pytest.mark.parametrize(
    "setting, sweep_cell, resumes",
    [("auto", True, True), ("auto", False, False), (True, False, True), (False, True, False)],
)
def test_resume_setting(setting, sweep_cell, resumes):
    assert wants_resume({"resume": setting}, sweep_cell) is resumes


@pytest.mark.parametrize(
    ("override", "shown"),
    [("resume=maybe", "'maybe'"), ("resume=1", "1"), ("resume=0", "0"), ("resume=1.0", "1.0")],
)
def test_resume_setting_is_checked(override, shown):
    """Only auto, true and false: 1 and 0 equal True and False but are not bools."""
    with pytest.raises(UserError, match=f"resume={shown} is not allowed; choose one of: auto"):
        plan_run(composed_config([override]), get_registry())


@pytest.mark.parametrize("value", ["auto", "true", "false"])
def test_resume_choices_pass(value):
    assert planned(f"resume={value}").config["resume"] in ("auto", True, False)


def test_the_plan_revision_is_the_records_revision():
    plan = planned()
    assert isinstance(plan.revision, Revision)
    assert plan.revision == run_revision(plan.backend, plan.task, plan.task_options)
    assert plan.revision.code and plan.revision.inputs is None  # qa's embedded data


def test_resume_is_not_part_of_the_config_hash():
    assert planned("resume=false").config["resume"] is False
    assert config_hash(planned("resume=false").config) == config_hash(planned().config)


def test_finds_the_finished_record_anywhere_under_the_output_root(tmp_path):
    plan = planned()
    record_of(plan).write(tmp_path / "runs" / "multirun" / "old-sweep" / "0_naive_qa_seed0")

    path, found = finished_record(plan, tmp_path / "runs")

    assert found.run_id == "naive-qa-1234"
    assert path.parent.name == "0_naive_qa_seed0"
    assert not (tmp_path / "cache").exists(), "nothing was built to decide"
    reused = reuse((path, found), tmp_path / "runs" / "new-sweep" / "cell")
    assert RunResult.load(tmp_path / "runs" / "new-sweep" / "cell" / "result.json") == reused


def test_the_per_example_sidecar_travels_with_a_reused_record(tmp_path):
    plan = planned()
    old = tmp_path / "runs" / "old-sweep" / "cell"
    scores = ExampleScores.build("f1", "mean", ["a", "b"], [["a"], ["c"]], [[1.0], [0.0]])
    record = record_of(plan)
    record.quality.examples_file = scores.write(old).name
    record.write(old)

    reuse(finished_record(plan, tmp_path / "runs"), tmp_path / "new")

    assert ExampleScores.load(tmp_path / "new" / EXAMPLES_FILE) == scores


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "failed", "error": "boom"},
        {"xbench_version": "0.0.1"},
        {"revision": Revision(code="0" * 16, inputs=None)},
        {"config_hash": "f" * 16},
    ],
)
def test_only_an_ok_record_of_the_same_revision_counts(tmp_path, changes):
    plan = planned()
    record_of(plan, **changes).write(tmp_path / "runs" / "cell")
    assert finished_record(plan, tmp_path / "runs") is None


def test_another_seed_is_another_cell(tmp_path):
    record_of(planned()).write(tmp_path / "runs" / "cell")
    assert finished_record(planned("seed=1"), tmp_path / "runs") is None


def test_the_newest_matching_record_wins(tmp_path):
    plan = planned()
    record_of(plan, run_id="old", created="2024-01-01").write(tmp_path / "runs" / "a")
    record_of(plan, run_id="new", created="2024-06-01").write(tmp_path / "runs" / "b")
    assert finished_record(plan, tmp_path / "runs")[1].run_id == "new"


def test_inputs_hash_follows_the_files_task_options_name(tmp_path):
    data = tmp_path / "train.json"
    data.write_text("[1]")
    options = replace(QAOptions(), data=replace(QAOptions().data, train_path=str(data)))
    first = inputs_hash(options)
    data.write_text("[2]")
    assert first is not None and inputs_hash(options) != first
    assert inputs_hash(QAOptions()) is None, "embedded data: the config and code decide"


def test_source_hash_changes_with_the_source(tmp_path):
    package = tmp_path / "plugin"
    package.mkdir()
    (package / "__init__.py").write_text("A = 1\n")
    first = source_hash(package)
    source_hash.cache_clear()
    (package / "__init__.py").write_text("A = 2\n")
    assert source_hash(package) != first


def sweep_command(*extra: str) -> list[str]:
    backends = "backend=naive,uniform"
    return [sys.executable, "-m", "xbench.cli", "run", "-m", backends, "task=qa", *extra]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("kill", [signal.SIGINT, signal.SIGKILL])
def test_a_killed_sweep_resumes_with_every_finished_cell(tmp_path, kill):
    args = sweep_command("trainer=debug", "logger=none", "threads=1", *SMALL_QA)
    runs = tmp_path / "runs" / "multirun"
    first = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Ctrl-C reaches a foreground sweep; a shell running these tests in the background
        # ignores SIGINT, and its children would inherit that.
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 300
    while not list(runs.glob("*/*/result.json")) and time.monotonic() < deadline:
        assert first.poll() is None, "the sweep ended before it could be killed"
        time.sleep(0.2)
    first.send_signal(kill)
    assert first.wait(timeout=120) != 0
    (killed,) = runs.iterdir()
    before = {r.backend.name: r for r in map(RunResult.load, killed.glob("*/result.json"))}
    finished = {name: r for name, r in before.items() if r.status == "ok"}
    assert "naive" in finished, "the first cell's record survived intact"
    assert all(r.error.startswith("interrupted") for r in before.values() if r.status != "ok")
    time.sleep(1.1)  # a new sweep folder (named by the second)

    again = subprocess.run(args, capture_output=True, text=True, timeout=600)

    assert again.returncode == 0, again.stderr[-3000:]
    (resumed,) = (d for d in runs.iterdir() if d != killed)
    after = {r.backend.name: r for r in map(RunResult.load, resumed.glob("*/result.json"))}
    assert set(after) == {"naive", "uniform"} and all(r.status == "ok" for r in after.values())
    for name, record in finished.items():
        assert f"skipped {name} × qa seed=0" in again.stdout
        assert after[name].run_id == record.run_id
    if "uniform" not in finished:
        assert "skipped uniform" not in again.stdout
    board = (resumed / "leaderboard.md").read_text()
    assert "| naive | ok |" in board and "| uniform | ok |" in board

"""Bad names and values on the command line: one ``xbench: error:`` line, exit 2, before any
data, cache or run folder exists (real subprocesses of the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _xbench(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {
        "XBENCH_OUTPUT_DIR": str(tmp_path / "runs"),
        "XBENCH_CACHE_DIR": str(tmp_path / "cache"),
        "WANDB_MODE": "offline",
        "CUDA_VISIBLE_DEVICES": "",  # the gpu case must hold on any machine
    }
    return subprocess.run(
        [sys.executable, "-m", "xbench.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _assert_refused(tmp_path, args: tuple[str, ...], *expected: str) -> None:
    done = _xbench(tmp_path, *args)

    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("xbench: error:"), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    for text in expected:
        assert text in lines[0], lines[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


CASES = {
    "typo-group": (("run", "tsk=qa"), "'tsk'", "Did you mean 'task'?"),
    "unknown-key": (("run", "model.d_modl=32"), "'model.d_modl'", "Did you mean 'd_model'?"),
    "added-key": (("run", "+foo=1"), "unknown key 'foo'"),
    "negative-steps": (("run", "trainer.max_steps=-1"), "trainer.max_steps=-1", "[1, inf]"),
    "fractional-steps": (("run", "trainer.max_steps=2.5"), "trainer.max_steps=2.5", "int"),
    "zero-repeats": (("run", "measure.repeats=0"), "measure.repeats=0"),
    "gpu-missing": (("run", "trainer=gpu"), "trainer.accelerator=gpu", "available: cpu"),
    "sweep-bad-value": (
        ("run", "-m", "backend=naive,flash", "measure.repeats=1,0"),
        "measure.repeats=0",
    ),
}
FAST = ("typo-group", "added-key", "gpu-missing")


@pytest.mark.parametrize(
    "case",
    [c if c in FAST else pytest.param(c, marks=pytest.mark.slow) for c in CASES],
)
def test_a_bad_request_is_one_line_before_any_work(tmp_path, case):
    args, *expected = CASES[case]

    _assert_refused(tmp_path, args, *expected)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("run", "trainer=debg"), "choose one of: cpu, debug, gpu. Did you mean 'debug'?"),
        (("run", "model=huge"), "unknown model 'huge'; choose one of: base, hf, small, tiny"),
        (("run", "logger=wnadb"), "Did you mean 'wandb'?"),
        (("run", "+trainer.fast_dev_rn=1"), "Did you mean 'fast_dev_run'?"),
        (("run", "seed=abc=1"), "invalid override"),
        (("bench", "logger=wnadb"), "Did you mean 'wandb'?"),
    ],
    ids=["trainer-choice", "model-choice", "logger-choice", "lightning-key", "parse", "bench"],
)
def test_hydra_lookup_and_parse_errors_are_one_line(tmp_path, args, expected):
    _assert_refused(tmp_path, args, expected)

"""wandb with credentials but no reachable server: ``mode=auto`` goes offline within
seconds and says so in one line; ``mode=online`` fails fast with one line (exit 2).
The server is a closed port on 127.0.0.1: no real host is ever contacted."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xbench.api.errors import UserError
from xbench.integrations.wandb import check_logger_settings, resolve_mode

SMALL_QA = [
    "task=qa",
    "trainer=debug",
    "task.data.train_size=32",
    "task.data.val_size=8",
    "task.data.test_size=8",
    "task.batch_size=8",
    "task.eval_batch_size=8",
]


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def unreachable_server(monkeypatch) -> str:
    url = closed_port_url()
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", url)
    return url


def test_auto_falls_back_offline_within_seconds_and_says_so(unreachable_server, caplog):
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="xbench.integrations.wandb"):
        assert resolve_mode("auto") == "offline"
    assert time.monotonic() - started < 3
    assert [r.getMessage() for r in caplog.records] == [
        f"wandb server {unreachable_server} cannot be reached (Connection refused); "
        "logging offline instead"
    ]


def test_online_fails_fast_with_one_line(unreachable_server):
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        check_logger_settings({"name": "wandb", "mode": "online"})
    assert time.monotonic() - started < 3
    assert str(caught.value).startswith(
        f"logger.mode=online but the wandb server {unreachable_server} cannot be reached"
    )
    assert "\n" not in str(caught.value)


def wandb_run(url: str, *overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    env.update(WANDB_API_KEY="x" * 40, WANDB_BASE_URL=url)
    return subprocess.run(
        [sys.executable, "-m", "xbench.cli", "run", *SMALL_QA, "logger=wandb", *overrides],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.slow
def test_an_online_run_without_a_server_is_one_line_before_any_data(tmp_path):
    url = closed_port_url()
    started = time.monotonic()
    done = wandb_run(url, "logger.mode=online")
    assert time.monotonic() - started < 20
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("xbench: error:")]
    assert len(errors) == 1 and url in errors[0]
    assert not list(Path(os.environ["XBENCH_OUTPUT_DIR"]).rglob("result.json"))


@pytest.mark.slow
def test_an_auto_run_without_a_server_finishes_offline():
    url = closed_port_url()
    done = wandb_run(url, "logger.mode=auto")
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert output.count(f"wandb server {url} cannot be reached") == 1
    (record,) = Path(os.environ["XBENCH_OUTPUT_DIR"]).rglob("result.json")
    assert json.loads(record.read_text())["status"] == "ok"
    assert list(record.parent.glob("wandb/offline-run-*"))

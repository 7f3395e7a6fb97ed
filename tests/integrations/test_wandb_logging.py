"""wandb mode resolution (online only with credentials, never blocking without them) and
the run summary a record puts into its wandb run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from xbench.api.errors import UserError
from xbench.integrations.wandb import (
    check_logger_settings,
    has_credentials,
    log_summary,
    make_wandb_logger,
    resolve_mode,
    wandb_enabled,
    wandb_project,
)
from xbench.records.result import RunResult
from xbench.records.summary import headline

V1_QA = Path(__file__).parents[1] / "records" / "fixtures" / "result_v1_qa.json"


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("NETRC", raising=False)


@pytest.fixture
def reachable_server(monkeypatch):
    """A local TCP listener as the wandb server, so the reachability probe succeeds."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        yield


def test_auto_is_offline_without_credentials(no_credentials):
    assert not has_credentials()
    assert resolve_mode("auto") == "offline"


def test_auto_is_online_with_an_api_key(no_credentials, reachable_server, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"


def test_auto_is_online_with_a_netrc_login(no_credentials, reachable_server, tmp_path):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    netrc.chmod(0o600)
    assert resolve_mode("auto") == "online"


@pytest.mark.parametrize("mode", ["online", "offline", "disabled"])
def test_explicit_modes_are_kept(no_credentials, reachable_server, mode):
    assert resolve_mode(mode) == mode


def test_wandb_mode_environment_wins(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode("online") == "offline"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"name": "tensorboard"}, "logger='tensorboard' is not available; choose one of: wandb"),
        ({"name": "wandb", "mode": "bogus"}, "logger.mode='bogus' is not allowed; choose one"),
    ],
)
def test_bad_logger_settings_are_one_line_errors(settings, message):
    with pytest.raises(UserError, match=message):
        check_logger_settings(settings)


@pytest.mark.parametrize(
    "settings", [{}, {"name": "none"}, {"name": "none", "mode": "bogus"}, {"name": "wandb"}]
)
def test_good_logger_settings_pass(settings):
    check_logger_settings(settings)  # no error; a mode means nothing without wandb


@pytest.mark.parametrize(
    ("settings", "enabled"),
    [
        ({}, False),
        ({"name": "none"}, False),
        ({"name": "wandb"}, True),
        ({"name": "wandb", "mode": "offline"}, True),
        ({"name": "wandb", "mode": "disabled"}, False),
    ],
)
def test_wandb_is_enabled_only_by_a_wandb_logger_that_is_not_disabled(settings, enabled):
    assert wandb_enabled(settings) is enabled


def test_the_project_defaults_to_xbench():
    assert wandb_project({}) == wandb_project({"project": None}) == "xbench"
    assert wandb_project({"project": "mine"}) == "mine"


@pytest.mark.slow
def test_the_wandb_run_summary_holds_the_record_headline(tmp_path):
    record = RunResult.load(V1_QA)
    logger = make_wandb_logger({"mode": "offline"}, tmp_path, record.run_id, record.config)

    log_summary(logger, record)

    (log,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    inspect = [sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json", str(log)]
    done = subprocess.run(inspect, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    logged = json.loads(done.stdout)["summary"]
    assert {k: logged[k] for k in headline(record)} == headline(record)
    assert logged["cross_attention/prefill/latency_ms"] == pytest.approx(0.06114900000397938)
    assert logged["test/f1"] == pytest.approx(0.8913333415985107)

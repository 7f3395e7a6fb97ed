"""Self-healing caches: every damaged entry or checksum side file is rebuilt with one
warning naming the file; a cache location that cannot be written is one line naming it."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from xbench.api.errors import UserError
from xbench.taskkit.cache import CACHE_ENV, cache_path, cached_json
from xbench_tasks.speech_to_text.store import cached_arrays

PARAMS = {"size": 3}
DATA = {"rows": [1, 2, 3]}


class Build:
    def __init__(self, value):
        self.value, self.calls = value, 0

    def __call__(self):
        self.calls += 1
        return self.value


def sidecar(path):
    return path.with_suffix(".sha256")


def junk_side_file(path):
    sidecar(path).write_bytes(b"\xff\x00 not a checksum")
    return sidecar(path)


def side_file_is_a_folder(path):
    sidecar(path).unlink()
    (sidecar(path) / "inside").mkdir(parents=True)
    return sidecar(path)


def entry_is_a_folder(path):
    path.unlink()
    (path / "inside").mkdir(parents=True)
    return path


def truncated_entry(path):
    path.write_bytes(path.read_bytes()[:5])
    return path


def entry_is_a_fifo(path):
    path.unlink()
    os.mkfifo(path)
    return path


def entry_gone(path):
    path.unlink()
    return path


def undecodable_entry(path):
    """Bytes that match their checksum but are no cache payload."""
    path.write_bytes(b"[1, 2")
    sidecar(path).write_text(hashlib.sha256(b"[1, 2").hexdigest())
    return path


@pytest.mark.parametrize(
    "damage",
    [
        junk_side_file,
        side_file_is_a_folder,
        entry_is_a_folder,
        truncated_entry,
        entry_is_a_fifo,
        entry_gone,
        undecodable_entry,
    ],
)
def test_a_damaged_json_cache_heals_with_one_warning_naming_the_file(damage, caplog):
    build = Build(DATA)
    _, checksum = cached_json("ns", PARAMS, build)
    named = damage(cache_path("ns", PARAMS, ".json"))

    with caplog.at_level(logging.WARNING, logger="xbench.taskkit.cache"):
        data, rebuilt = cached_json("ns", PARAMS, build)

    assert (data, rebuilt, build.calls) == (DATA, checksum, 2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(named) in warnings[0] and "rebuilding" in warnings[0]
    caplog.clear()
    assert cached_json("ns", PARAMS, build) == (DATA, checksum) and build.calls == 2
    assert not caplog.records


@pytest.mark.parametrize("damage", [truncated_entry, undecodable_entry, entry_is_a_folder])
def test_a_damaged_audio_feature_cache_heals(damage, caplog):
    arrays = {"features": np.arange(6, dtype=np.float32).reshape(2, 3)}
    build = Build(arrays)
    _, checksum = cached_arrays("speech", PARAMS, build)
    named = damage(cache_path("speech", PARAMS, ".npz"))

    with caplog.at_level(logging.WARNING, logger="xbench.taskkit.cache"):
        loaded, rebuilt = cached_arrays("speech", PARAMS, build)

    np.testing.assert_array_equal(loaded["features"], arrays["features"])
    assert (rebuilt, build.calls) == (checksum, 2)
    assert [str(named) in r.getMessage() for r in caplog.records] == [True]


@pytest.mark.parametrize("under", ["", "sub/dir"])
def test_a_cache_location_that_is_a_file_is_one_line_naming_it(tmp_path, monkeypatch, under):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv(CACHE_ENV, str(blocker / under) if under else str(blocker))

    with pytest.raises(UserError) as caught:
        cached_json("ns", PARAMS, Build(DATA))

    assert str(caught.value) == (
        f"cannot write the cache at {blocker} (it is a file); set {CACHE_ENV} to a writable folder"
    )


@pytest.mark.slow
def test_a_run_with_an_unwritable_cache_is_one_line(tmp_path):
    blocker = tmp_path / "cache-file"
    blocker.write_text("x")
    done = subprocess.run(
        [sys.executable, "-m", "xbench.cli", "run", "task=qa", "trainer=debug"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, CACHE_ENV: str(blocker / "xbench")},
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("xbench: error:")]
    assert errors == [
        f"xbench: error: cannot write the cache at {blocker} (it is a file); "
        f"set {CACHE_ENV} to a writable folder"
    ]

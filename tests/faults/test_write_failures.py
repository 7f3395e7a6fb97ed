"""A record that cannot be written costs the record, never the figures: the summary is on
screen, one line says where the record could not go, and the run exits 1."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest
from helpers import SMALL_QA

import xbench.records.result
from xbench.cli.main import main

QUICK = ["trainer=debug", "logger=none", "threads=1", "measure.repeats=2", *SMALL_QA]


@pytest.mark.slow
def test_a_record_path_taken_by_a_folder_keeps_the_figures_and_exits_1(tmp_path):
    run_dir = tmp_path / "cell"
    (run_dir / "result.json").mkdir(parents=True)  # a real folder where the file must go
    (run_dir / "result.json" / "keep").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "xbench.cli", "run", "backend=naive", f"hydra.run.dir={run_dir}"]
        + QUICK,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "xbench results" in done.stdout and "naive" in done.stdout, "the summary is shown"
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    path = run_dir / "result.json"
    assert last == f"xbench: error: the run record could not be written to {path}: Is a directory"


def test_a_full_disk_at_the_end_of_a_run_keeps_the_figures_and_exits_1(
    tmp_path, monkeypatch, capsys
):
    def disk_full(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(xbench.records.result, "write_atomic", disk_full)
    with pytest.raises(SystemExit) as stopped:
        main(["run", "backend=naive", f"hydra.run.dir={tmp_path / 'cell'}", *QUICK])
    assert stopped.value.code == 1
    out, err = capsys.readouterr()
    assert "xbench results" in out and "naive" in out
    assert "f1" in out, "the headline quality figure is on screen"
    last = err.strip().splitlines()[-1]
    assert last.startswith("xbench: error: the run record could not be written to ")
    assert last.endswith("cell/result.json: No space left on device")
    assert not (tmp_path / "cell" / "result.json").exists()

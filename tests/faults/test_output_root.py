"""An output root that cannot hold runs (a path through a regular file) is one line, exit
2, before Hydra makes any folder — not a traceback from Hydra's own mkdir."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from xbench.api.errors import UserError
from xbench.config.preflight import check_output_root


def test_a_root_through_a_file_names_the_file(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match=f"{blocker} is not a folder; set output_root"):
        check_output_root(blocker / "runs" / "deeper")


def test_a_root_that_does_not_exist_yet_is_fine(tmp_path):
    check_output_root(tmp_path / "new" / "runs")
    assert not (tmp_path / "new").exists()  # checking creates nothing


@pytest.mark.slow
def test_a_run_into_a_root_under_a_file_is_refused_in_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = os.environ | {"XBENCH_OUTPUT_DIR": str(blocker / "runs")}
    done = subprocess.run(
        [sys.executable, "-m", "xbench.cli", "run", "trainer=debug", "logger=none"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "is not a folder" in lines[0], done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert blocker.read_text() == "not a folder"

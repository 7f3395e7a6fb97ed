"""Finding records on disk: every readable one, old versions included; an unreadable file
(a newer schema, a torn or hand-broken file) is skipped with one line naming it."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from xbench.records.result import RESULT_FILE, SCHEMA_VERSION
from xbench.records.store import find_results

V1_QA = Path(__file__).parent / "fixtures" / "result_v1_qa.json"


def runs_folder(root: Path) -> dict[str, Path]:
    """A version-1 record, a record from a newer xbench and a truncated file."""
    paths = {name: root / name / RESULT_FILE for name in ("v1", "newer", "corrupt")}
    for path in paths.values():
        path.parent.mkdir(parents=True)
    shutil.copyfile(V1_QA, paths["v1"])
    newer = json.loads(V1_QA.read_text()) | {"schema_version": SCHEMA_VERSION + 1}
    paths["newer"].write_text(json.dumps(newer))
    paths["corrupt"].write_text(V1_QA.read_text()[:500])
    return paths


def test_unreadable_records_are_skipped_and_the_others_found(tmp_path, caplog):
    paths = runs_folder(tmp_path)

    found = list(find_results([tmp_path]))

    assert [(path, record.run_id) for path, record in found] == [(paths["v1"], "flash-qa-6fd539f4")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert (
        f"skipping {paths['newer']}: schema version {SCHEMA_VERSION + 1} is newer than this"
        f" xbench reads ({SCHEMA_VERSION}); upgrade xbench to read it"
    ) in warnings
    assert any(w.startswith(f"skipping {paths['corrupt']}: not valid JSON (") for w in warnings)


def test_a_record_file_can_be_named_directly(tmp_path):
    paths = runs_folder(tmp_path)
    assert [p for p, _ in find_results([paths["v1"], tmp_path / "newer"])] == [paths["v1"]]


def test_run_folder_internals_are_not_searched(tmp_path):
    paths = runs_folder(tmp_path)
    inside = tmp_path / "v1" / "wandb" / "run" / RESULT_FILE
    inside.parent.mkdir(parents=True)
    shutil.copyfile(V1_QA, inside)
    assert [p for p, _ in find_results([tmp_path])] == [paths["v1"]]

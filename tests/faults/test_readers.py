"""Readers of run records (``xbench leaderboard``, resume's search) skip every file they
cannot interpret with one warning naming it and build from the rest; records written are
strict JSON (no NaN/Infinity tokens)."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.records import SHAPE, record

from xbench.measure.cross_attention import measure_cross_attention
from xbench.measure.types import AttentionShape
from xbench.records.result import RunResult
from xbench.records.store import find_results
from xbench_plugins.naive import NaiveAttention


def _good_dict() -> dict:
    return record(backend="naive").to_dict()


def _set(data: dict, path: str, value) -> dict:
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


def _without(data: dict, key: str) -> dict:
    data.pop(key)
    return data


# folder name -> (file text, what the warning must say)
BAD = {
    "array": ("[1, 2]", "a JSON array, not an object"),
    "null": ("null", "a JSON null, not an object"),
    "truncated": ('{"run_id": "x", ', "not valid JSON"),
    "missing": (json.dumps(_without(_good_dict(), "backend")), "missing field(s) backend"),
    "seed_text": (json.dumps(_set(_good_dict(), "seed", "zero")), "seed: a JSON string"),
    "created_number": (json.dumps(_set(_good_dict(), "created", 5)), "created: a JSON number"),
    "latency_text": (
        json.dumps(
            _set(_good_dict(), "efficiency.cross_attention.train.latency.median_ms", "fast")
        ),
        "efficiency.cross_attention.train.latency.median_ms: a JSON string where float is expected",
    ),
    "backend_text": (json.dumps(_set(_good_dict(), "backend", "flash")), "backend: a JSON string"),
    "metrics_array": (json.dumps(_set(_good_dict(), "quality.metrics", [0.5])), "quality.metrics"),
    "latency_nan": (
        record(backend="naive").to_json().replace('"median_ms": 1.0', '"median_ms": NaN', 1),
        "median_ms: null where a value is required",
    ),
}


def _folder_of_good_and_bad(root: Path) -> None:
    record(backend="flash", latency=1.0).write(root / "flash")
    record(backend="sparse", latency=2.0, primary=0.4).write(root / "sparse")
    for name, (text, _) in BAD.items():
        (root / name).mkdir(parents=True)
        (root / name / "result.json").write_text(text)


@pytest.mark.slow
def test_leaderboard_skips_each_bad_record_with_one_warning_and_shows_the_rest(tmp_path):
    runs = tmp_path / "runs"
    _folder_of_good_and_bad(runs)

    done = subprocess.run(
        [sys.executable, "-m", "xbench.cli", "leaderboard", str(runs), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    warnings = [line for line in output.splitlines() if line.startswith("skipping ")]
    assert len(warnings) == len(BAD), warnings
    for name, (_, why) in BAD.items():
        (line,) = [w for w in warnings if f"{runs / name / 'result.json'}:" in w]
        assert why in line, line
    with (tmp_path / "leaderboard.csv").open() as table:
        assert [row["backend"] for row in csv.DictReader(table)] == ["flash", "sparse"]


def test_resume_search_reads_past_bad_records(tmp_path, caplog):
    _folder_of_good_and_bad(tmp_path)

    with caplog.at_level(logging.WARNING, logger="xbench.records.store"):
        found = list(find_results([tmp_path]))

    assert sorted(r.backend.name for _, r in found) == ["flash", "sparse"]
    assert len(caplog.records) == len(BAD)


def test_a_record_never_holds_nan_or_infinity_tokens(tmp_path):
    result = record(primary=float("nan"), tokens=float("inf"))
    result.quality.metrics = {"f1": float("nan"), "em": 0.25}

    path = result.write(tmp_path)

    def refuse(token):
        raise AssertionError(f"{token} in the record")

    data = json.loads(path.read_text(), parse_constant=refuse)
    assert data["quality"]["primary"] is None
    assert data["quality"]["metrics"] == {"f1": None, "em": 0.25}
    assert data["efficiency"]["inference_tokens_per_second"] is None
    back = RunResult.load(path)
    assert (back.quality.primary, back.efficiency.inference_tokens_per_second) == (None, None)


def test_an_older_record_with_a_nan_token_in_an_optional_figure_reads_as_null(tmp_path):
    text = record().to_json().replace('"primary": 0.5', '"primary": NaN')
    (tmp_path / "result.json").write_text(text)

    assert RunResult.load(tmp_path / "result.json").quality.primary is None


def test_a_latency_with_no_timed_call_is_a_failed_measurement_not_nan():
    shape = AttentionShape(**{**SHAPE.to_dict(), "batch": 1})

    measured = measure_cross_attention(NaiveAttention(), shape, warmup=0, repeats=0)

    assert measured.status == "failed"
    assert "no timed calls" in measured.reason
    assert measured.latency is None


@pytest.mark.parametrize("status", ["ok", "failed"])
def test_a_good_record_still_round_trips(tmp_path, status):
    original = record(status=status, error=None if status == "ok" else "boom")

    assert RunResult.load(original.write(tmp_path)) == original

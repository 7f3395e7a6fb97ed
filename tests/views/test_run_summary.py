"""The console table a run ends with: the record's figures, and the first line of a
failure's error."""

from __future__ import annotations

from pathlib import Path

from helpers.records import not_measured, record
from rich.console import Console

from xbench.records.result import RunResult
from xbench.views.run_summary import print_summary

V1_QA = Path(__file__).parents[1] / "records" / "fixtures" / "result_v1_qa.json"


def shown(results: list[RunResult]) -> str:
    console = Console(record=True, width=220)
    print_summary(results, console)
    return console.export_text()


def test_a_finished_run_shows_its_quality_latency_and_memory():
    text = shown([RunResult.load(V1_QA)])
    (row,) = [line for line in text.splitlines() if "flash" in line]
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells == [
        "flash",
        "qa",
        "ok",
        "f1 ↑ 0.891",
        "exact_match=0.879 f1=0.891",
        "52.0",
        "6525",
        "0.061 ± 0.004",
        "22.9 KiB",
        "647.8 MiB",
    ]
    assert "not measured" not in text


def test_a_finished_run_whose_cross_attention_was_not_measured_says_why():
    unmeasured = not_measured(record(backend="flash"), reason="CUDA out of memory [8.00 GiB]")
    text = shown([unmeasured])
    (row,) = [line for line in text.splitlines() if "flash" in line and "│" in line]
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[2] == "ok" and cells[7:9] == ["-", "-"]
    line = "flash × qa: cross-attention not measured: oom: CUDA out of memory [8.00 GiB]"
    assert line in text.splitlines()


def test_a_failed_run_shows_dashes_and_its_first_error_line():
    failed = record(backend="naive", status="oom", error="CUDA out of memory\nTraceback ...")
    text = shown([failed])
    (row,) = [line for line in text.splitlines() if "naive" in line and "│" in line]
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[2:] == ["oom", "-", "", "-", "-", "-", "-", "-"]
    assert "naive × qa: oom CUDA out of memory" in text.splitlines()
    assert "Traceback" not in text

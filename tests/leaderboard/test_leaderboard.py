"""The leaderboard from run records: seeds averaged, rows in the metric's direction,
ratios to flash, failures with their reasons, and the local report files."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.records import found, load, not_measured, record
from rich.console import Console

from xbench.cli.main import main
from xbench.leaderboard.board import (
    build_leaderboard,
    data_records,
    display_columns,
    display_rows,
    pareto_front,
)
from xbench.leaderboard.console import print_leaderboard
from xbench.leaderboard.html import render_html
from xbench.leaderboard.publish import write_report
from xbench.records.result import Environment, RunResult


def test_seeds_are_averaged_with_their_standard_deviation():
    (board,) = build_leaderboard(
        found(*(record("naive", seed=s, primary=p) for s, p in enumerate([0.2, 0.4, 0.6])))
    )
    (row,) = board.rows
    assert row.seeds == [0, 1, 2] and row.runs == 3
    assert row.primary == pytest.approx(0.4)
    assert row.primary_std == pytest.approx(0.2)
    assert display_rows(board)[0][3] == "0.4000 ± 0.2000"


@pytest.mark.parametrize("higher, order", [(True, ["b", "c", "a"]), (False, ["a", "c", "b"])])
def test_rows_follow_the_metric_direction(higher, order):
    metric = "f1" if higher else "wer"
    records = [
        record(name, primary=p, metric=metric, higher=higher)
        for name, p in (("a", 0.1), ("b", 0.9), ("c", 0.5))
    ]
    (board,) = build_leaderboard(found(*records))
    assert [r.backend for r in board.rows] == order
    assert board.higher_is_better is higher
    assert [cells[0] for cells in display_rows(board)] == ["1", "2", "3"]


def test_failures_sort_last_with_the_first_line_of_their_error():
    records = [
        record("boom", status="failed", error="RuntimeError: kernel exploded\nTraceback ..."),
        record("flash", primary=0.3),
        record("big", status="oom", error="CUDA out of memory. Tried to allocate 2 GiB"),
        record("nan", status="diverged", error="training loss is nan at step 3"),
    ]
    (board,) = build_leaderboard(found(*records))
    assert board.rows[0].backend == "flash"
    failing = {r.backend: (r.status, r.reason) for r in board.rows[1:]}
    assert failing == {
        "boom": ("failed", "RuntimeError: kernel exploded"),
        "big": ("oom", "CUDA out of memory. Tried to allocate 2 GiB"),
        "nan": ("diverged", "training loss is nan at step 3"),
    }
    assert all(cells[0] == "" for cells in display_rows(board)[1:]), "failures get no rank"


def test_a_partly_failed_cell_keeps_its_finished_seeds():
    records = [
        record("naive", seed=0, primary=0.5),
        record("naive", seed=1, status="failed", error="interrupted (KeyboardInterrupt)"),
    ]
    (row,) = build_leaderboard(found(*records))[0].rows
    assert row.status == "ok" and row.seeds == [0] and row.runs == 2
    assert row.reason == "1 of 2 seeds did not finish: interrupted (KeyboardInterrupt)"


def test_ratios_are_relative_to_flash_on_the_same_device():
    gpu = Environment(device="NVIDIA H100")
    records = [
        record("flash", latency=2.0, decode=0.1, memory=1000, step_ms=100.0, tokens=400.0),
        record(
            "naive", latency=5.0, decode=0.3, memory=4000, step_ms=200.0, tokens=100.0, steps=100
        ),
        record("sparse", environment=gpu),
    ]
    (board,) = build_leaderboard(found(*records))
    rows = {r.backend: r for r in board.rows}
    assert board.baseline == "flash"
    assert rows["naive"].vs_baseline == pytest.approx(
        {
            "train_ms": 2.5,
            "prefill_ms": 2.5,
            "decode_ms": 3.0,
            "memory_bytes": 4.0,
            "train_steps_per_s": 0.5,
            "achieved_steps_per_s": 0.5,
            "infer_tokens_per_s": 0.25,
        }
    )
    assert rows["flash"].vs_baseline["train_ms"] == pytest.approx(1.0)
    assert rows["naive"].decode_ms == pytest.approx(0.3) and rows["naive"].train_ms == 5.0
    assert set(rows["sparse"].vs_baseline.values()) == {None}, "another device: no ratio"
    assert rows["sparse"].device == "NVIDIA H100" and rows["naive"].device.startswith("cpu (")


def qa_settings(facts: int, steps: int = 800, repeats: int = 20) -> dict:
    """Config groups of a QA cell: its number of facts, training budget, timing repeats."""
    return {
        "task": {"name": "qa", "data": {"num_facts": facts}},
        "trainer": {"max_steps": steps},
        "measure": {"repeats": repeats},
    }


def test_ratios_divide_only_by_the_flash_row_of_the_same_configuration():
    records = [
        record("flash", latency=1.0, settings=qa_settings(8)),
        record("naive", latency=3.0, settings=qa_settings(8)),
        record("flash", latency=30.0, settings=qa_settings(32)),
        record("naive", latency=60.0, settings=qa_settings(32)),
        record("sparse", latency=40.0, settings=qa_settings(32, steps=400)),  # another budget
        record("uniform", latency=0.5, settings=qa_settings(32, repeats=5)),  # other timing
        record("linear", latency=5.0, settings=qa_settings(64)),  # no flash at 64 facts
    ]
    (board,) = build_leaderboard(found(*records))

    rows = {(r.backend, r.label.split("num_facts=")[1][:2]): r for r in board.rows}
    flash8, flash32 = rows["flash", "8 "].label, rows["flash", "32"].label
    assert rows["flash", "32"].vs_baseline["train_ms"] == pytest.approx(1.0), "itself"
    assert rows["naive", "32"].vs_baseline["train_ms"] == pytest.approx(2.0)
    assert rows["naive", "8 "].vs_baseline["train_ms"] == pytest.approx(3.0)
    assert (rows["naive", "8 "].baseline, rows["naive", "32"].baseline) == (flash8, flash32)
    for lone in ("sparse", "uniform", "linear"):
        row = next(r for r in board.rows if r.backend == lone)
        assert row.baseline is None and set(row.vs_baseline.values()) == {None}, lone
        cells = display_rows(board)[board.rows.index(row)]
        ratios = [cells[i] for i, c in enumerate(display_columns(board)) if c == "vs flash"]
        assert ratios == [""] * 6, "blank, not a ratio to another configuration"
    assert board.baseline == "flash"
    raw = {r["backend"]: r for r in data_records(board)}
    assert raw[rows["naive", "32"].label]["flash_row"] == flash32
    assert raw[rows["linear", "64"].label]["flash_row"] is None


def test_among_flash_variants_of_one_configuration_the_shortest_label_is_the_baseline():
    records = [
        record("flash", options={"kernel": "math"}, latency=4.0),
        record("flash", options={"kernel": "auto"}, latency=2.0),
        record("naive", latency=6.0),
    ]
    (board,) = build_leaderboard(found(*records))
    rows = {r.label: r for r in board.rows}
    assert {r.baseline for r in board.rows} == {"flash backend.kernel=auto"}
    assert rows["flash backend.kernel=math"].vs_baseline["train_ms"] == pytest.approx(2.0)
    assert rows["naive"].vs_baseline["train_ms"] == pytest.approx(3.0)


def test_the_achieved_rate_sits_beside_the_median_step_rate_in_every_view(tmp_path):
    fast = record("flash", step_ms=50.0, steps=200, fit_seconds=50.0)
    slow = record("naive", step_ms=100.0, steps=200, fit_seconds=200.0)
    old = record("sparse", fit_seconds=None)  # an older record: no fit time
    (board,) = build_leaderboard(found(fast, slow, old))

    columns = display_columns(board)
    at = columns.index("train steps/s")
    assert columns[at + 2 : at + 4] == ["achieved steps/s", "vs flash"]
    cells = {row.backend: display_rows(board)[i] for i, row in enumerate(board.rows)}
    assert cells["flash"][at : at + 4] == ["20.00", "1.00×", "4.00", "1.00×"]
    assert cells["naive"][at : at + 4] == ["10.00", "0.50×", "1.00", "0.25×"]
    assert cells["sparse"][at + 2 : at + 4] == ["", ""]

    console = Console(record=True, width=400)
    print_leaderboard([board], console)
    assert "achieved steps/s" in console.export_text()
    assert "<th>achieved steps/s</th>" in render_html([board], {}, ["/runs"])
    write_report([board], tmp_path, ["/runs"])
    rows = {
        r["backend"]: r
        for r in csv.DictReader(io.StringIO((tmp_path / "leaderboard.csv").read_text()))
    }
    assert float(rows["naive"]["achieved_steps_per_s"]) == pytest.approx(1.0)
    assert float(rows["naive"]["achieved_steps_per_s_vs_flash"]) == pytest.approx(0.25)
    assert rows["sparse"]["achieved_steps_per_s"] == ""
    assert "| 4.00 | 1.00× |" in (tmp_path / "leaderboard.md").read_text()


def test_rows_measured_under_contention_are_flagged_next_to_the_device():
    records = [
        record("flash", seed=0, loads=(load(3.5), load(1.0))),
        record("flash", seed=1, loads=(load(0.5), load(0.5))),
        record("naive", loads=(None, load(5.0))),
        record("sparse", loads=(load(2.0), load(1.5))),  # at the cores, not above them
        record("linear"),  # an older record: no load
    ]
    (board,) = build_leaderboard(found(*records))

    rows = {r.backend: r for r in board.rows}
    assert rows["flash"].loaded == ["train"], "one seed was enough"
    assert rows["naive"].loaded == ["measure"]
    assert rows["sparse"].loaded == rows["linear"].loaded == []
    device = display_columns(board).index("device")
    cells = {row.backend: display_rows(board)[i] for i, row in enumerate(board.rows)}
    assert cells["flash"][device] == "cpu (Test CPU, 2 threads) (loaded at train)"
    assert cells["naive"][device] == "cpu (Test CPU, 2 threads) (loaded at measure)"
    assert cells["sparse"][device] == "cpu (Test CPU, 2 threads)"
    assert rows["naive"].vs_baseline["train_ms"] == pytest.approx(1.0), "same device still"
    raw = {r["backend"]: r for r in data_records(board)}
    assert (raw["flash"]["loaded"], raw["sparse"]["loaded"]) == ("train", "")
    assert raw["flash"]["device"] == "cpu (Test CPU, 2 threads)"


def test_a_measurement_that_failed_leaves_its_figures_blank_and_keeps_the_quality():
    failed = not_measured(record("naive", primary=0.7))
    (board,) = build_leaderboard(found(record("flash", primary=0.5), failed))
    naive = next(r for r in board.rows if r.backend == "naive")
    assert naive.status == "ok" and naive.primary == pytest.approx(0.7)
    assert naive.train_ms is None and naive.decode_ms is None and naive.memory_bytes is None
    assert naive.train_steps_per_s == pytest.approx(10.0), "the other figures stay"
    cells = display_rows(board)[board.rows.index(naive)]
    first = display_columns(board).index("x-attn train ms")
    assert cells[first : first + 6] == [""] * 6
    assert cells[-1] == naive.reason
    assert naive.reason == "x-attn train/prefill/decode oom: CUDA out of memory while timing"
    assert next(r for r in board.rows if r.backend == "flash").reason == ""


def test_the_reason_names_an_unmeasured_cross_attention_only_when_its_figures_are_blank():
    unsupported = not_measured(record("naive", seed=0), "unsupported", "needs head_dim 128")
    partly = [not_measured(record("linear", seed=0)), record("linear", seed=1, latency=3.0)]
    interrupted = record("sparse", seed=1, status="failed", error="interrupted\nTraceback")
    both = [not_measured(record("sparse", seed=0)), interrupted]

    (board,) = build_leaderboard(found(unsupported, *partly, *both))

    rows = {r.backend: r for r in board.rows}
    assert rows["naive"].reason == "x-attn train/prefill/decode unsupported: needs head_dim 128"
    assert rows["linear"].train_ms == pytest.approx(3.0) and rows["linear"].reason == ""
    assert rows["sparse"].reason == (
        "1 of 2 seeds did not finish: interrupted;"
        " x-attn train/prefill/decode oom: CUDA out of memory while timing"
    )


def test_without_flash_the_ratio_columns_are_blank():
    (board,) = build_leaderboard(found(record("naive"), record("linear")))
    assert board.baseline is None
    ratio = display_columns(board).index("vs flash")
    assert {cells[ratio] for cells in display_rows(board)} == {""}


def test_a_copied_record_counts_once_and_a_rerun_replaces_the_old_one():
    first = record("naive", primary=0.2, created="2024-01-01T00:00:00")
    rerun = record("naive", primary=0.6, created="2024-02-01T00:00:00")
    (board,) = build_leaderboard(found(first, first, rerun))
    (row,) = board.rows
    assert row.runs == 1 and row.primary == pytest.approx(0.6)


def test_tasks_get_separate_boards_and_option_variants_separate_rows():
    records = [
        record("flash", options={"kernel": "math"}, primary=0.4),
        record("flash", options={"kernel": "auto"}, primary=0.5),
        record("naive", task="translation", metric="bleu", primary=20.0),
    ]
    boards = build_leaderboard(found(*records))
    assert [b.task for b in boards] == ["qa", "translation"]
    assert [r.label for r in boards[0].rows] == [
        "flash backend.kernel=auto",
        "flash backend.kernel=math",
    ]
    assert boards[1].metric == "bleu" and boards[1].rows[0].label == "naive"


@pytest.mark.parametrize(
    "points, higher, front",
    [
        ([(1, 0.5), (2, 0.7), (3, 0.6), (0.5, 0.1)], True, [0, 1, 3]),
        ([(1, 20.0), (2, 10.0), (3, 15.0)], False, [0, 1]),
        ([(1, 0.5), (1, 0.5)], True, [0, 1]),
    ],
)
def test_pareto_front(points, higher, front):
    assert pareto_front(points, higher) == front


def test_report_files(tmp_path):
    records = [record("flash", seed=s, primary=0.5 + s / 10, latency=1.0) for s in range(2)] + [
        record("naive", primary=0.4, latency=3.0),
        record("boom", status="failed", error="x|y"),
    ]
    boards = build_leaderboard(found(*records))
    plots = write_report(boards, tmp_path, ["/runs"])

    rows = list(csv.DictReader(io.StringIO((tmp_path / "leaderboard.csv").read_text())))
    assert [r["backend"] for r in rows] == ["flash", "naive", "boom"]
    assert float(rows[0]["primary_mean"]) == pytest.approx(0.55)
    assert float(rows[1]["train_ms_vs_flash"]) == pytest.approx(3.0)
    assert float(rows[1]["train_share"]) == pytest.approx(2 * 3.0 / 100.0)
    assert rows[2]["status"] == "failed" and rows[2]["primary_mean"] == ""

    md = (tmp_path / "leaderboard.md").read_text()
    assert "| 1 | flash | ok | 0.5500 ± 0.0707 | 2 |" in md
    assert "x\\|y" in md, "a pipe in a cell does not split the Markdown row"
    assert "![qa: quality vs latency](pareto_qa.png)" in md

    png = plots["qa"].read_bytes()
    assert png.startswith(b"\x89PNG") and plots["qa"].parent == tmp_path
    page = (tmp_path / "leaderboard.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert [base64.b64decode(e) for e in embedded] == [png]
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "nothing to fetch from a network"


def test_leaderboard_command_reads_records_under_folders(tmp_path, capsys):
    for i, r in enumerate([record("flash"), record("naive", primary=0.9)]):
        r.write(tmp_path / "runs" / f"cell{i}")
    assert main(["leaderboard", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
    assert {p.name for p in (tmp_path / "report").iterdir()} == {
        "leaderboard.md",
        "leaderboard.csv",
        "leaderboard.html",
        "pareto_qa.png",
    }
    assert "qa: f1 (higher is better)" in capsys.readouterr().out
    md = (tmp_path / "report" / "leaderboard.md").read_text()
    assert "| 1 | naive | ok | 0.9000 |" in md and "| 2 | flash | ok | 0.5000 |" in md


def test_leaderboard_command_defaults_to_the_output_root(tmp_path, capsys):
    record("flash").write(tmp_path / "runs" / "2024-01-01" / "cell")  # conftest's output root
    assert main(["leaderboard"]) == 0
    assert (tmp_path / "runs" / "leaderboard.html").exists()


def test_leaderboard_command_names_a_missing_folder(tmp_path, capsys):
    assert main(["leaderboard", str(tmp_path / "nope")]) == 2
    assert f"no such folder: {tmp_path / 'nope'}" in capsys.readouterr().err


# A record written by the previous release (schema version 1) for `xbench run task=qa`.
V1_QA = Path(__file__).parents[1] / "records" / "fixtures" / "result_v1_qa.json"
V1_ROW = (
    "| 1 | flash | ok | 0.8913 | 1 |  |  | reference |  |  |  |  |  |  | 19.22 | 1.00× |  |  | 6525"
    " | 1.00× | cpu (Intel(R) Xeon(R) Processor, 2 threads) | x-attn: older record"
    " (schema 2 or before):"
    " one forward at the task's longest target and source, random inputs, every key real"
    " (an all-ones mask), kept as prefill; no train or decode phase |"
)


def old_and_unreadable_records(root: Path) -> dict[str, Path]:
    """The version-1 record, one from a newer xbench, and a truncated file."""
    paths = {name: root / name / "result.json" for name in ("v1", "newer", "corrupt")}
    for path in paths.values():
        path.parent.mkdir(parents=True)
    paths["v1"].write_text(V1_QA.read_text())
    newer = json.loads(V1_QA.read_text()) | {"schema_version": 99, "run_id": "from-the-future"}
    paths["newer"].write_text(json.dumps(newer))
    paths["corrupt"].write_text(V1_QA.read_text()[:300])
    return paths


def test_a_version_1_record_shows_on_the_leaderboard(tmp_path, caplog):
    paths = old_and_unreadable_records(tmp_path / "runs")

    assert main(["leaderboard", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0

    assert V1_ROW in (tmp_path / "report" / "leaderboard.md").read_text().splitlines()
    (row,) = csv.DictReader(io.StringIO((tmp_path / "report" / "leaderboard.csv").read_text()))
    assert row["backend"] == "flash" and row["run_dirs"] == str(paths["v1"].parent)
    assert float(row["primary_mean"]) == pytest.approx(0.8913333415985107)
    assert float(row["prefill_ms"]) == pytest.approx(0.06114900000397938)
    assert row["train_ms"] == row["decode_ms"] == row["memory_bytes"] == ""
    assert float(row["train_steps_per_s"]) == pytest.approx(1e3 / 52.024490499988474)
    assert float(row["infer_tokens_per_s"]) == pytest.approx(6524.68420452437)
    corrupt, newer = (r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert corrupt.startswith(f"skipping {paths['corrupt']}: not valid JSON (")
    assert newer == (
        f"skipping {paths['newer']}: schema version 99 is newer than this xbench reads (3);"
        " upgrade xbench to read it"
    )


@pytest.mark.slow
def test_the_leaderboard_command_shows_a_version_1_record(tmp_path):
    paths = old_and_unreadable_records(tmp_path / "runs")
    command = [sys.executable, "-m", "xbench.cli", "leaderboard", str(tmp_path / "runs")]

    done = subprocess.run(
        [*command, "--out", str(tmp_path / "report")], capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert "qa: f1 (higher is better)" in done.stdout and "0.8913" in done.stdout
    assert V1_ROW in (tmp_path / "report" / "leaderboard.md").read_text().splitlines()
    corrupt, newer = done.stderr.splitlines()
    assert corrupt.startswith(f"skipping {paths['corrupt']}: not valid JSON (")
    assert newer == (
        f"skipping {paths['newer']}: schema version 99 is newer than this xbench reads (3);"
        " upgrade xbench to read it"
    )


V2_QA = Path(__file__).parents[1] / "records" / "fixtures" / "result_v2_qa.json"


def test_an_older_record_and_a_new_one_share_a_board(tmp_path):
    old = RunResult.load(V2_QA)  # naive, one forward with every key real: prefill only
    new = record("flash", latency=2.0, decode=0.04, memory=3000, step_ms=50.0)
    new.environment = old.environment  # measured on the same machine with the same
    new.config = old.config | {"backend": {"name": "flash"}}  # settings: ratios apply

    (board,) = build_leaderboard(found(old, new))

    rows = {r.backend: r for r in board.rows}
    assert rows["naive"].train_ms is rows["naive"].decode_ms is None
    assert rows["naive"].prefill_ms == pytest.approx(0.08638249983050628)
    assert rows["naive"].reason.startswith("x-attn: older record (schema 2 or before)")
    assert rows["naive"].vs_baseline["prefill_ms"] == pytest.approx(0.08638249983050628 / 0.5)
    assert rows["naive"].vs_baseline["train_ms"] is None
    assert (rows["flash"].train_ms, rows["flash"].decode_ms) == (2.0, 0.04)
    assert rows["flash"].memory_bytes == 3000 and rows["flash"].reason == ""
    assert rows["naive"].infer_tokens_per_s == pytest.approx(265.39897363786133)


def test_every_view_has_the_train_decode_memory_and_tokens_columns(tmp_path):
    (board,) = build_leaderboard(found(record("flash", latency=2.0, decode=0.04, memory=3000)))
    columns = display_columns(board)
    named = ("x-attn train ms", "x-attn decode ms", "x-attn train mem", "infer tok/s")
    cells = dict(zip(columns, display_rows(board)[0], strict=True))
    assert [cells[name] for name in named] == ["2.000", "0.0400", "2.9 KiB", "500"]

    console = Console(record=True, width=400)
    print_leaderboard([board], console)
    text = console.export_text()
    assert all(name in text for name in named) and "0.0400" in text
    page = render_html([board], {}, ["/runs"])
    assert all(f"<th>{name}</th>" in page for name in named)
    (raw,) = data_records(board)
    assert (raw["train_ms"], raw["decode_ms"], raw["memory_bytes"]) == (2.0, 0.04, 3000)
    assert raw["infer_tokens_per_s"] == 500.0 and raw["decode_share"] == pytest.approx(0.2)

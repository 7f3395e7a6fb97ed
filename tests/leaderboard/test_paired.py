"""The paired bootstrap, the difference column it fills and the control's verdict."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from helpers.records import found, record, with_examples

from xbench.api.errors import UserError
from xbench.cli.main import main
from xbench.leaderboard.board import (
    board_notes,
    build_leaderboard,
    data_records,
    display_columns,
    display_rows,
)
from xbench.leaderboard.paired import NotPaired, paired_difference
from xbench.leaderboard.publish import publish, write_report
from xbench.records.examples import ExampleScores
from xbench.records.store import find_results

N = 200


def scores(values, references=None, formula: str = "mean") -> ExampleScores:
    rows = [list(np.atleast_1d(v)) for v in values]
    references = references or [[f"answer {i}"] for i in range(len(rows))]
    return ExampleScores.build("f1", formula, ["p"] * len(rows), references, rows)


def hard_and_easy(seed: int = 0) -> np.ndarray:
    """Per-example F1 of a reference system: examples differ a lot in difficulty."""
    return np.random.default_rng(seed).uniform(0, 1, N)


def test_a_real_difference_is_resolved_and_its_interval_holds_it():
    base = hard_and_easy()
    better = np.clip(base + 0.05 + np.random.default_rng(1).normal(0, 0.05, N), 0, 1)
    d = paired_difference({0: scores(better)}, {0: scores(base)})
    assert d.delta == pytest.approx(better.mean() - base.mean())
    assert d.low < d.delta < d.high
    assert d.low > 0 and d.resolved
    assert d.examples == N and d.seeds == (0,)


def test_a_null_difference_is_not_resolved():
    base = hard_and_easy()
    swing = np.where(np.arange(N) % 2 == 0, 0.1, -0.1)  # as often better as worse
    other = base + swing
    d = paired_difference({0: scores(other)}, {0: scores(base)})
    assert d.delta == pytest.approx(0.0, abs=1e-12)
    assert d.low < 0 < d.high and not d.resolved


def test_pairing_resolves_what_the_spread_of_difficulty_would_hide():
    """A shift of 0.02 is far inside the examples' spread (std 0.29) but resolved when the
    same examples are resampled for both systems."""
    base = hard_and_easy()
    d = paired_difference({0: scores(base + 0.02)}, {0: scores(base)})
    assert d.resolved and d.high - d.low < 0.01
    assert base.std() / np.sqrt(N) > 0.02 / 2


def test_seeds_both_rows_have_are_averaged_on_the_same_resampled_examples():
    base = {s: scores(hard_and_easy(s)) for s in (0, 1, 2)}
    shifted = {s: scores(hard_and_easy(s) - 0.1) for s in (0, 1)}
    d = paired_difference(shifted, base)
    assert d.seeds == (0, 1)
    assert d.delta == pytest.approx(-0.1) and d.high < 0
    assert d.high - d.low < 1e-9, "a constant shift is the same on every resample"


def test_the_bootstrap_is_reproducible():
    a, b = scores(hard_and_easy(0)), scores(hard_and_easy(1))
    assert paired_difference({0: a}, {0: b}) == paired_difference({0: a}, {0: b})


def test_pairing_refuses_different_test_examples():
    base = scores(hard_and_easy())
    other = scores(hard_and_easy(), references=[[f"question {i}"] for i in range(N)])
    with pytest.raises(NotPaired, match=r"different test examples \(200 against 200, 0 shared"):
        paired_difference({0: other}, {0: base})
    with pytest.raises(NotPaired, match="no seed in common"):
        paired_difference({1: base}, {0: base})
    with pytest.raises(NotPaired, match="different per-example metrics"):
        paired_difference({0: scores([[1.0, 2.0]] * N, formula="ratio")}, {0: base})


def test_examples_in_another_order_are_paired_by_id():
    base = hard_and_easy()
    refs = [[f"answer {i}"] for i in range(N)]
    a = scores(base + 0.1, refs)
    shuffled = ExampleScores(a.metric, a.formula, a.value, a.examples[::-1])
    assert paired_difference({0: shuffled}, {0: scores(base)}) == paired_difference(
        {0: a}, {0: scores(base)}
    )


def board_of(tmp_path, *cells, reference: str = "flash"):
    """Boards of records with sidecars: ``cells`` are (backend, seed, per-example values)."""
    written = []
    for i, (backend, seed, values, *rest) in enumerate(cells):
        folder = tmp_path / f"{i}-{backend}-{seed}"
        folder.mkdir()
        references = rest[0] if rest else None
        written.append(
            with_examples(
                record(backend, seed=seed), folder, [[v] for v in values], references=references
            )
        )
    return build_leaderboard(written, reference)


def test_every_row_gets_its_difference_to_flash_and_the_resolved_ones_a_mark(tmp_path):
    base = hard_and_easy()
    (board,) = board_of(
        tmp_path,
        ("flash", 0, base),
        ("naive", 0, base),
        ("uniform", 0, base * 0.2),
    )
    rows = {r.backend: r for r in board.rows}
    assert rows["naive"].difference.delta == 0.0 and not rows["naive"].difference.resolved
    assert rows["uniform"].difference.high < 0
    assert rows["flash"].difference is None and rows["flash"].reference == "flash"
    cells = {r.backend: c for r, c in zip(board.rows, display_rows(board), strict=True)}
    delta = next(i for i, c in enumerate(display_columns(board)) if c.startswith("Δ vs flash"))
    assert cells["flash"][delta] == "reference"
    assert cells["naive"][delta] == "+0.0000 [+0.0000, +0.0000]"
    assert cells["uniform"][delta].endswith(" *") and cells["uniform"][delta].startswith("-0.")
    notes = board_notes(board)
    assert notes[0] == f"{N} test examples; seeds 0"
    (control,) = [note for note in notes if note.startswith("control:")]
    assert control.startswith("control: uniform is statistically worse than flash (-0.")
    assert {r["backend"]: r["measures_cross_attention"] for r in data_records(board)} == {
        "flash": True,
        "naive": True,
        "uniform": True,
    }


def test_a_control_as_good_as_exact_attention_flags_the_board(tmp_path):
    base = hard_and_easy()
    noise = np.random.default_rng(3).normal(0, 0.02, N)
    (board,) = board_of(tmp_path, ("flash", 0, base), ("uniform", 0, base + noise))
    (verdict,) = board.verdicts
    assert verdict.measures is False
    assert board_notes(board)[-1].startswith(
        "control: WARNING: uniform is not statistically worse than flash ("
    )
    assert board_notes(board)[-1].endswith(
        "on this data the task does not measure cross-attention, so no backend ranking on "
        "it means anything"
    )
    assert {r["measures_cross_attention"] for r in data_records(board)} == {False}


def test_for_a_lower_is_better_metric_the_control_must_score_higher(tmp_path):
    written = []
    for backend, errors in [("flash", 1.0), ("uniform", 3.0)]:
        (tmp_path / backend).mkdir()
        result = record(backend, task="speech_to_text", metric="wer", higher=False)
        stats = [[errors, 4.0]] * 50
        written.append(with_examples(result, tmp_path / backend, stats, formula="ratio"))
    (board,) = build_leaderboard(written)
    uniform = next(r for r in board.rows if r.backend == "uniform")
    assert uniform.difference.delta == pytest.approx(0.5)
    assert board.verdicts[0].measures is True


def test_rows_without_sidecars_load_and_show_no_interval():
    old = [record("flash"), record("uniform", primary=0.1)]
    (board,) = build_leaderboard(found(*old))
    assert all(r.difference is None and r.unpaired == "" for r in board.rows)
    delta = next(i for i, c in enumerate(display_columns(board)) if c.startswith("Δ vs"))
    assert {c[delta] for c in display_rows(board)} == {"reference", ""}
    assert board_notes(board)[0] == "test-set size unknown; seeds 0"
    assert board_notes(board)[-1] == "control: uniform: no verdict (no per-example scores)"


def test_rows_on_different_test_examples_say_so_instead_of_an_interval(tmp_path):
    base = hard_and_easy()
    other = [[f"question {i}"] for i in range(N)]
    (board,) = board_of(tmp_path, ("flash", 0, base), ("naive", 0, base, other))
    naive = next(r for r in board.rows if r.backend == "naive")
    assert naive.difference is None
    assert naive.unpaired == (
        "not paired with flash: different test examples (200 against 200, 0 shared by id)"
    )
    assert display_rows(board)[board.rows.index(naive)][-1] == naive.unpaired


def test_boards_are_per_task_and_tier(tmp_path):
    base = hard_and_easy()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    short = with_examples(record("flash"), tmp_path / "a", [[v] for v in base])
    long = record("flash", settings={"task": {"name": "qa", "tier": "long"}})
    long.tier = "long"
    boards = build_leaderboard([short, with_examples(long, tmp_path / "b", [[0.5]] * 10)])
    assert [(b.task, b.tier, b.key, b.title) for b in boards] == [
        ("qa", "default", "qa", "qa"),
        ("qa", "long", "qa-long", "qa (tier long)"),
    ]
    assert boards[1].rows[0].test_examples == 10


def test_the_reference_is_chosen_on_the_command_line(tmp_path, capsys):
    base = hard_and_easy()
    board_of(tmp_path, ("flash", 0, base), ("naive", 0, base - 0.1), ("sparse", 0, base))
    assert main(["leaderboard", str(tmp_path), "--reference", "naive"]) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "leaderboard.csv").read_text())))
    by = {r["backend"]: r for r in rows}
    assert {r["reference"] for r in rows} == {"naive"}
    assert float(by["flash"]["delta"]) == pytest.approx(0.1)
    assert by["flash"]["resolved"] == "True" and by["naive"]["delta"] == ""
    assert by["flash"]["test_examples"] == str(N) and by["flash"]["seed_list"] == "0"
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert "Δ vs naive (95% CI)" in markdown and "- control: uniform" not in markdown
    assert "- control: no uniform row finished on this board" in markdown


def test_a_reference_no_record_ran_is_one_line_naming_the_backends_there(tmp_path, capsys):
    board_of(tmp_path, ("naive", 0, hard_and_easy()))
    assert main(["leaderboard", str(tmp_path), "--reference", "flsh"]) == 2
    err = capsys.readouterr().err
    assert f"reference 'flsh': no run of that backend under {tmp_path}" in err
    assert "the backends there: naive" in err
    assert main(["leaderboard", str(tmp_path)]) == 0, "without flash the default just pairs none"


def test_the_views_show_the_notes(tmp_path):
    base = hard_and_easy()
    board_of(tmp_path, ("flash", 0, base), ("uniform", 0, base))
    write_report(build_leaderboard(find_results([tmp_path])), tmp_path / "out", [str(tmp_path)])
    page = (tmp_path / "out" / "leaderboard.html").read_text()
    assert '<li class="warning">control: WARNING: uniform is not statistically worse' in page
    with pytest.raises(UserError, match="reference 'linear': no run of that backend"):
        publish([tmp_path], tmp_path / "out", reference="linear")

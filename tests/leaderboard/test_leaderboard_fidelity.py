"""The leaderboard shows each row's attention fidelity and, once per task and tier, the
sparsity profile of its exact rows."""

from __future__ import annotations

import csv
import dataclasses
import io

from helpers.records import found, record
from rich.console import Console

from xbench.leaderboard.board import build_leaderboard, display_columns, display_rows
from xbench.leaderboard.console import print_leaderboard
from xbench.leaderboard.html import render_html
from xbench.leaderboard.publish import write_report
from xbench.records.result import Fidelity, SparsityProfile


def _profile(keys_90: float) -> SparsityProfile:
    return SparsityProfile(
        tokens=100,
        real_keys=50.0,
        keys_50=2.0,
        keys_90=keys_90,
        keys_99=30.0,
        fraction_50=0.04,
        fraction_90=keys_90 / 50,
        fraction_99=0.6,
        entropy=1.5,
        entropy_normalised=0.4,
    )


def _with(result, mass, sparsity=None, exact=True, aer=None):
    result.fidelity = Fidelity(
        layer=1,
        aligned_tokens=40,
        mass_on_truth=mass,
        uniform_mass=0.02,
        aer=aer,
        sparsity=sparsity,
    )
    result.backend = dataclasses.replace(result.backend, exact=exact)
    return result


def test_rows_show_the_mass_on_truth_and_one_sparsity_line_per_tier(tmp_path):
    flash = [_with(record("flash", seed=s), 0.8 + s / 10, _profile(8 + s), aer=0.2) for s in (0, 1)]
    naive = _with(record("naive"), 0.7, _profile(12.0))
    uniform = _with(record("uniform"), 0.02, None, exact=False)
    plain = record("linear")  # no fidelity: blank, not zero
    (board,) = build_leaderboard(found(*flash, naive, uniform, plain))

    at = display_columns(board).index("attn on truth")
    cells = {row.backend: display_rows(board)[i] for i, row in enumerate(board.rows)}
    assert cells["flash"][at : at + 2] == ["0.850 (chance 0.020)", "0.200"]
    assert cells["uniform"][at] == "0.020 (chance 0.020)"
    assert cells["linear"][at : at + 2] == ["", ""]

    (line,) = board.sparsity  # exact rows only: flash's two seeds and naive
    assert line.tier == "default" and line.backends == ["flash", "naive"] and line.runs == 3
    assert line.figures["keys_90"] == (8 + 9 + 12) / 3

    console = Console(record=True, width=400)
    print_leaderboard([board], console)
    text = console.export_text()
    assert "sparsity, tier default (flash, naive, 3 runs)" in text
    assert "2.0 / 9.7 / 30.0 keys" in text
    assert "sparsity, tier default" in render_html([board], {}, ["/runs"])
    write_report([board], tmp_path, ["/runs"])
    assert "sparsity, tier default" in (tmp_path / "leaderboard.md").read_text()
    rows = list(csv.DictReader(io.StringIO((tmp_path / "leaderboard.csv").read_text())))
    by_backend = {r["backend"]: r for r in rows}
    assert float(by_backend["naive"]["mass_on_truth"]) == 0.7
    assert by_backend["linear"]["mass_on_truth"] == ""


def test_a_board_without_exact_profiles_has_no_sparsity_line():
    (board,) = build_leaderboard(found(_with(record("uniform"), 0.02, None, exact=False)))
    assert board.sparsity == []

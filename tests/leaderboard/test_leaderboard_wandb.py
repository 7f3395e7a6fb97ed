"""The wandb leaderboard run: a table per task and the plots, present in the offline run."""

from __future__ import annotations

import json

import pytest
from helpers.records import found, record

from xbench.integrations.wandb import sweep_group
from xbench.leaderboard.board import build_leaderboard
from xbench.leaderboard.publish import write_report
from xbench.leaderboard.wandb_tables import log_leaderboard


def test_sweep_group_is_the_sweep_folder_unless_set(tmp_path):
    assert sweep_group({}, tmp_path / "2024-01-01_10-00-00") == "2024-01-01_10-00-00"
    assert sweep_group({"group": "mine"}, tmp_path / "x") == "mine"


@pytest.mark.slow
def test_offline_leaderboard_run_holds_the_tables_and_plots(tmp_path):
    records = [record("flash", primary=0.7), record("naive", primary=0.4, latency=3.0)]
    records.append(record("naive", task="translation", metric="bleu", primary=21.0))
    boards = build_leaderboard(found(*records))
    plots = write_report(boards, tmp_path, ["/runs"])

    run_dir = log_leaderboard(boards, plots, {"mode": "offline"}, tmp_path, "sweep-1")

    assert run_dir.parent == tmp_path / "wandb" and run_dir.name.startswith("offline-run-")
    media = run_dir / "files" / "media"
    tables = {p.name.split("_")[0]: p for p in media.glob("table/leaderboard/*.table.json")}
    assert set(tables) == {"qa", "translation"}
    qa = json.loads(tables["qa"].read_text())
    backend = qa["columns"].index("backend")
    assert [row[backend] for row in qa["data"]] == ["flash", "naive"]
    ratio = qa["columns"].index("train_ms_vs_flash")
    assert qa["data"][1][ratio] == pytest.approx(3.0)
    achieved = qa["columns"].index("achieved_steps_per_s")
    assert qa["data"][1][achieved] == pytest.approx(200 / 40.0)
    decode = qa["columns"].index("decode_ms")
    assert qa["data"][1][decode] == pytest.approx(0.05)
    assert {p.name.split("_")[0] for p in media.glob("images/pareto/*.png")} == {
        "qa",
        "translation",
    }

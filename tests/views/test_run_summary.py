"""The console tables a run ends with: the record's figures, a row per cross-attention
phase, and the first line of a failure's error."""

from __future__ import annotations

from pathlib import Path

from helpers.records import load, not_measured, record
from rich.console import Console

from xbench.measure.types import Flops
from xbench.records.result import PHASES, Fidelity, LayerFidelity, RunResult, SparsityProfile
from xbench.views.run_summary import print_summary

V1_QA = Path(__file__).parents[1] / "records" / "fixtures" / "result_v1_qa.json"


def shown(results: list[RunResult]) -> str:
    console = Console(record=True, width=220)
    print_summary(results, console)
    return console.export_text()


def cells_of(text: str, *words: str) -> list[list[str]]:
    """The cells of each table row that holds every one of ``words``."""
    rows = [line for line in text.splitlines() if "│" in line and all(w in line for w in words)]
    return [[cell.strip() for cell in row.strip("│ ").split("│")] for row in rows]


def test_a_finished_run_shows_its_quality_steps_and_shares():
    flash = record(backend="flash", latency=2.0, decode=0.05, step_ms=100.0, tokens=640.0)
    (cells,) = cells_of(shown([flash]), "flash", "qa", "ok")
    assert cells[:5] == ["flash", "qa", "ok", "f1 ↑ 0.500", "f1=0.500"]
    assert cells[5:] == ["100.0", "4%", "5.00", "0.50", "20%", "640", "-", "-"]


def test_each_phase_shows_its_shape_latency_memory_and_roof():
    flash = record(backend="flash", latency=2.0, decode=0.05, memory=4000)
    phases = flash.efficiency.cross_attention
    phases.train.flops = Flops(count=4 * 10**9)
    phases.decode.bytes_moved = 10**6

    text = shown([flash])

    train, prefill, decode = (cells_of(text, "flash × qa", f" {p} ")[0] for p in PHASES)
    assert train == ["flash × qa", "train", "16×10×58, 20% padded", "2.000 ± 0.000", "-"] + [
        "3.9 KiB",
        "2.000 TFLOP/s",
    ]
    assert prefill[1:4] == ["prefill", "8×10×58, 10% padded", "0.500 ± 0.000"]
    assert prefill[6] == "-", "no FLOP count, no throughput"
    assert decode[1:3] == ["decode", "8×1×58, 10% padded"]
    assert decode[6] == "20.00 GB/s", "a decode step's roof is bytes read per second"


def test_an_older_record_shows_its_one_forward_as_prefill_with_the_note():
    text = shown([RunResult.load(V1_QA)])

    (prefill,) = cells_of(text, "flash × qa", "prefill")
    assert prefill[2:4] == ["8×10×58, 0% padded", "0.061 ± 0.004"]
    assert prefill[5:] == ["22.9 KiB", "0.019 TFLOP/s"]
    assert not cells_of(text, "flash × qa", " train ") and not cells_of(text, " decode ")
    assert "flash × qa: older record (schema 2 or before)" in text
    (cells,) = cells_of(text, "flash", "ok", "f1 ↑")
    assert cells[5:] == ["52.0", "-", "-", "-", "-", "6525", "647.8 MiB", "-"]


def test_a_finished_run_whose_cross_attention_was_not_measured_says_why():
    unmeasured = not_measured(record(backend="flash"), reason="CUDA out of memory [8.00 GiB]")
    text = shown([unmeasured])
    (cells,) = cells_of(text, "flash", "qa", "ok")
    assert cells[6] == cells[9] == "-", "no share without a phase figure"
    (decode,) = cells_of(text, "flash × qa", " decode ")
    assert decode[3:] == ["oom: CUDA out of memory [8.00 GiB]", "-", "-", "-"]
    line = "flash × qa: cross-attention train not measured: oom: CUDA out of memory [8.00 GiB]"
    assert line in text.splitlines()


def test_a_failed_run_shows_dashes_and_its_first_error_line():
    failed = record(backend="naive", status="oom", error="CUDA out of memory\nTraceback ...")
    text = shown([failed])
    (cells,) = cells_of(text, "naive")
    assert cells[2:] == ["oom", "-", "", "-", "-", "-", "-", "-", "-", "-", "-"]
    assert "naive × qa: oom CUDA out of memory" in text.splitlines()
    assert "Traceback" not in text and "cross-attention phases" not in text


def test_the_achieved_rate_shows_beside_the_median_step():
    run = record(backend="flash", step_ms=50.0, steps=300, fit_seconds=100.0)
    (cells,) = cells_of(shown([run]), "flash", "qa", "ok")
    assert cells[5:8] == ["50.0", "4%", "3.00"], "20 steps/s typical, 3 achieved"


def test_a_run_measured_under_contention_says_when_and_how_loaded():
    loaded = record(backend="flash", loads=(load(3.5), load(1.0)))
    idle = record(backend="naive", loads=(load(1.0), load(2.0)))
    lines = shown([loaded, idle]).splitlines()
    assert (
        "flash × qa: (loaded) load 3.50 on 2 usable cores at the start of training"
        " (2 threads): CPU figures read slower than on an idle machine"
    ) in lines
    assert sum("(loaded)" in line for line in lines) == 1, "the idle run and measurement: none"


def test_a_run_with_fidelity_shows_it_in_the_table_and_a_line():
    flash = record(backend="flash")
    flash.fidelity = Fidelity(
        layer=1,
        aligned_tokens=40,
        mass_on_truth=0.812,
        uniform_mass=0.02,
        aer=0.25,
        sparsity=SparsityProfile(
            tokens=50,
            real_keys=49.0,
            keys_50=1.0,
            keys_90=4.0,
            keys_99=12.0,
            fraction_50=0.02,
            fraction_90=0.08,
            fraction_99=0.24,
            entropy=0.9,
            entropy_normalised=0.23,
        ),
        layers=[LayerFidelity(layer=n, mass_on_truth=m) for n, m in enumerate((0.3, 0.812))],
        seconds=1.5,
    )
    text = shown([flash])
    (cells,) = cells_of(text, "flash", "qa", "ok")
    assert cells[-1] == "0.812"
    assert (
        "attention on the true positions 0.812 (last layer; layers 0.300 / 0.812; uniform 0.020;"
        in " ".join(text.split())
    )
    assert "50 / 90 / 99 % of a token's attention in 1 / 4 / 12 keys" in " ".join(text.split())

"""``xbench bench`` decode and ragged sweeps: decode series and their exponent fit in Nk,
the CPU length cap, drawn source lengths, backend variants, their one-line errors, and
both presets run tiny end to end through the CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch

from xbench.bench import analysis, grid, lengths
from xbench.bench.command import compose, plan_bench
from xbench.cli.main import main
from xbench.measure.inputs import lengths_mask
from xbench.measure.types import Measurement
from xbench.registry import get_registry

CPU = torch.device("cpu")
NK = [256, 1024, 4096]


def settings(**changes) -> grid.BenchSettings:
    return dataclasses.replace(grid.BenchSettings(), **changes)


def decode_points(backend: str, batch: int, times) -> list[dict]:
    points = []
    for nk, ms in zip(NK, times, strict=True):
        shape = grid.Shape(batch, 8, 1, nk, 64, "float32", "decode").attention(CPU, None)
        point = {"backend": backend, **Measurement(shape).to_dict(), "source": ""}
        point.update(
            latency={"median_ms": ms, "iqr_ms": 0.0, "count": 3},
            memory={"bytes": 4 * nk, "method": "test"},
        )
        points.append(point)
    return points


def test_decode_exponent_is_fitted_in_nk_per_batch_at_fixed_nq():
    noise = [1.03, 0.97, 1.0]
    points = decode_points("flash", 64, [0.01 * n * e for n, e in zip(NK, noise, strict=True)])
    points += decode_points("linear", 64, [0.5 * e for e in noise])
    points += decode_points("flash", 1, [0.02, 0.021, 0.05])  # overhead-bound: its own series

    rows = {(r["backend"], r["series"]): r for r in analysis.exponents(points)}

    large = "B=64 H=8 D=64 float32 decode Nq=1"
    assert set(rows) == {
        ("flash", large),
        ("linear", large),
        ("flash", "B=1 H=8 D=64 float32 decode Nq=1"),
    }
    assert rows[("flash", large)]["time_exponent"] == pytest.approx(1.0, abs=0.03)
    assert rows[("linear", large)]["time_exponent"] == pytest.approx(0.0, abs=0.03)
    assert rows[("flash", large)]["lengths"] == NK
    check = {
        "kind": "exponent",
        "quantity": "time",
        "backend": "linear",
        "series": large,
        "max": 0.3,
    }
    [result] = analysis.evaluate_checks([check], points, [], analysis.exponents(points))
    assert result["passed"] and result["value"] == pytest.approx(0.0, abs=0.03)


def test_a_forward_series_keeps_nk_over_nq_and_a_decode_one_keeps_nq():
    forward = [grid.Shape(4, 8, n, 2 * n, 64, "float32", "fwd") for n in (128, 256)]
    decode = [grid.Shape(4, 8, 1, n, 64, "float32", "decode") for n in (128, 256)]

    assert grid.series_key(forward[0]) == grid.series_key(forward[1])
    assert grid.series_key(forward[0])[-1] == "Nk/Nq=2"
    assert grid.series_key(decode[0]) == grid.series_key(decode[1])
    assert grid.series_key(decode[0])[-1] == "Nq=1"


def test_cpu_length_cap_leaves_out_long_keys_on_cpu_only():
    chosen = settings(nq=[1], nk=NK, cpu_max_nk=1024, passes=["decode"])
    shapes = grid.expand(chosen, [(nq, nk, "") for nq, nk in grid.length_pairs(chosen)])

    kept, left_out = grid.cap_cpu_lengths(chosen, shapes, CPU)

    assert [s.nk for s in kept] == [256, 1024] and left_out == [4096]
    assert grid.cap_cpu_lengths(chosen, shapes, torch.device("cuda")) == (shapes, [])
    assert grid.cap_cpu_lengths(settings(cpu_max_nk=0), shapes, CPU) == (shapes, [])


@pytest.mark.parametrize("distribution", ["uniform", "lognormal"])
def test_drawn_lengths_are_seeded_clipped_and_shared_across_nk(distribution):
    chosen = settings(masked=True, lengths=distribution, min_length=16, lognormal_sigma=2.0)

    drawn = lengths.drawn_lengths(chosen, 64, 1024)
    again = lengths.drawn_lengths(chosen, 64, 1024)
    other = lengths.drawn_lengths(dataclasses.replace(chosen, seed=1), 64, 1024)
    mask = lengths_mask(drawn, 1024, CPU)

    assert torch.equal(drawn, again) and not torch.equal(drawn, other)
    assert drawn.min() >= 16 and drawn.max() <= 1024 and len(set(drawn.tolist())) > 10
    assert mask.shape == (64, 1024) and torch.equal(mask.sum(dim=1), drawn)
    assert lengths.drawn_lengths(settings(masked=True), 64, 1024) is None
    if distribution == "uniform":  # the same quantiles at a longer Nk
        longer = lengths.drawn_lengths(chosen, 64, 4096)
        assert (longer.float() / drawn.float()).median() == pytest.approx(4.0, rel=0.05)


def test_lognormal_lengths_centre_on_the_stated_median():
    chosen = settings(masked=True, lengths="lognormal", lognormal_median=0.25, lognormal_sigma=0.3)

    drawn = lengths.drawn_lengths(chosen, 4000, 4096).float()

    assert drawn.median() == pytest.approx(1024, rel=0.05)
    assert drawn.log().std() == pytest.approx(0.3, rel=0.1)


def test_a_variant_is_measured_beside_its_backend_with_its_own_options():
    registry = get_registry()
    config = compose(["bench=ragged", "backend.flash.kernel=math", "logger=none"], registry)
    plan = plan_bench(config, registry)

    assert list(plan.backends) == ["flash", "naive", "sparse", "linear", "flash[layout=packed]"]
    assert plan.backend_options["flash[layout=packed]"] == {"kernel": "math", "layout": "packed"}
    assert plan.backends["flash[layout=packed]"].layout == "packed"
    assert plan.backends["flash"].layout == "padded" and plan.exact["flash[layout=packed]"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench.passes=[decode,prefill]"], "bench.passes[1]='prefill' is not allowed"),
        (["bench.cpu_max_nk=-1"], "bench.cpu_max_nk=-1 is out of range"),
        (["bench.lengths=gaussian"], "bench.lengths='gaussian' is not allowed; choose one of:"),
        (
            ["bench.lengths=uniform", "bench.masked=false"],
            "bench.lengths=uniform draws a padding mask; drop bench.masked=false",
        ),
        (
            ["bench.lengths=uniform", "bench.masked=true", "bench.padded_fraction=0.2"],
            "drop bench.padded_fraction=0.2",
        ),
        (
            ["bench.lengths=uniform", "bench.masked=true", "bench.min_length=300"],
            "bench.min_length=300 exceeds the shortest grid Nk=64",
        ),
        (["bench.min_length=0"], "bench.min_length=0 is out of range"),
        (["bench.lognormal_median=1.5"], "bench.lognormal_median=1.5 is out of range"),
        (["bench.variants=[{backend: flash}]"], "bench.variants[0]={'backend': 'flash'} must be"),
        (
            ["bench.variants=[{backend: flash, options: {layot: packed}}]"],
            "bench.variants[0].options: unknown option(s) layot",
        ),
        (
            ["bench.variants=[{backend: flash, options: {layout: jagged}}]"],
            "bench.variants[0].options.layout='jagged' is not allowed",
        ),
        (["bench.variants=[{backend: flsh, options: {layout: packed}}]"], "Did you mean 'flash'?"),
        (
            [
                "bench.variants=[{backend: flash, options: {layout: packed}},"
                "{backend: flash, options: {layout: packed}}]"
            ],
            "flash[layout=packed] is measured twice",
        ),
    ],
)
def test_bad_decode_and_ragged_settings_are_one_line_errors(args, message, capsys):
    assert main(["bench", "logger=none", *args]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("xbench: error:") and message in err[0]


def only_run() -> Path:
    [out_dir] = (Path(os.environ["XBENCH_OUTPUT_DIR"]) / "bench").iterdir()
    return out_dir


TINY = ["logger=none", "bench.warmup=0", "bench.repeats=1", "bench.rotate=1"]
TINY += ["bench.roofline=false", "bench.plots=false"]


@pytest.mark.slow
def test_decode_preset_runs_tiny_with_prepare_cost_throughput_and_exponents(capsys):
    code = main(["bench", "bench=decode", "bench.nk=[32,64,128]", "bench.cpu_max_nk=64", *TINY])

    printed = capsys.readouterr().out
    out_dir = only_run()
    report = json.loads((out_dir / "bench.json").read_text())
    rows = list(csv.DictReader((out_dir / "bench.csv").open()))
    fits = list(csv.DictReader((out_dir / "exponents.csv").open()))
    # 3 batches × 2 lengths (128 left out on CPU) × 4 backends
    assert len(report["points"]) == len(rows) == 24 and report["left_out_nk"] == [128]
    assert {p["status"] for p in report["points"]} == {"ok"}
    for point, row in zip(report["points"], rows, strict=True):
        assert point["shape"]["passes"] == "decode" and point["shape"]["nq"] == 1
        assert point["prepare"]["median_ms"] > 0
        assert float(row["prepare_ms"]) == pytest.approx(point["prepare"]["median_ms"])
        assert (
            point["bytes_moved"] == 2 * point["shape"]["batch"] * point["shape"]["nk"] * 8 * 64 * 4
        )
        gbs = point["bytes_moved"] / (point["latency"]["median_ms"] * 1e-3) / 1e9
        assert float(row["gb_per_s"]) == pytest.approx(gbs)
        assert row["kernel"] == point["kernel"] and point["kernel"]
    assert len(report["exponents"]) == len(fits) == 3 * 4
    assert {f["lengths"] for f in fits} == {"32 64"}
    assert all(" decode Nq=1" in f["series"] for f in fits)
    checks = report["checks"]
    assert len(checks) == 3 and all(isinstance(c["value"], float) for c in checks)
    assert code == (1 if any(not c["passed"] for c in checks) else 0)
    assert "prepare" in printed and "GB/s" in printed and "left out on CPU" in printed
    assert "decode Nq=1" in printed


@pytest.mark.slow
def test_ragged_preset_runs_tiny_with_drawn_lengths_and_each_kernel_under_the_mask():
    code = main(["bench", "bench=ragged", "bench.batch=[3]", "bench.heads=[1]", *TINY])

    report = json.loads((only_run() / "bench.json").read_text())
    points = report["points"]
    names = ["flash", "naive", "sparse", "linear", "flash[layout=packed]"]
    assert len(points) == 2 * 3 * len(names)  # passes × (Nq, Nk) pairs × backends
    assert {p["status"] for p in points} == {"ok"}
    for nk in (1024, 4096):
        at = [p for p in points if p["shape"]["nk"] == nk]
        drawn = at[0]["source_lengths"]
        assert all(p["source_lengths"] == drawn for p in at)  # every backend, the same batch
        assert all(16 <= n <= nk for n in drawn)
        padded = round(1 - sum(drawn) / (3 * nk), 4)
        assert {p["shape"]["padded_fraction"] for p in at} == {padded}
    kernels = {p["backend"]: p["kernel"] for p in points}
    assert kernels["flash"] == "flash / padded"
    assert kernels["flash[layout=packed]"] == "math / packed (nested jagged)"
    assert kernels["naive"] == "matmul-softmax-matmul"
    assert [c["value"] > 0 and c["passed"] for c in report["checks"]] == [True, True]
    assert code == 0

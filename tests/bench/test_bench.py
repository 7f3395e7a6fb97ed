"""``xbench bench`` pieces on CPU: the harness's memory figures against known sizes, typed
points, exponent fitting and crossovers on synthetic data, checks, and config errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers.backends import Broken, Constant, OutOfHostMemory, Refusing

import xbench
from xbench.api.errors import UserError
from xbench.api.options import describe_options
from xbench.api.task import TaskSpec
from xbench.bench import analysis, grid, timing
from xbench.bench.command import compose, plan_bench, run_bench, task_lengths, usage
from xbench.cli.main import main
from xbench.measure.types import Measurement
from xbench.registry import get_registry, load_registry
from xbench_plugins.flash import FlashAttention
from xbench_plugins.naive import NaiveAttention

CPU = torch.device("cpu")


def settings(**changes) -> grid.BenchSettings:
    base = {"warmup": 1, "repeats": 3, "rotate": 2, "roofline": False, "plots": False}
    return dataclasses.replace(grid.BenchSettings(), **{**base, **changes})


def shape(nq=256, nk=512, batch=2, heads=4, dim=64, passes="fwd") -> grid.Shape:
    return grid.Shape(batch, heads, nq, nk, dim, "float32", passes)


# The memory figure of the harness: naive's score matrix is visible, flash's is not.


def test_naive_point_peak_covers_its_score_matrix_and_flash_stays_far_below():
    point_shape = shape()
    scores = 2 * 4 * 256 * 512 * 4  # (B, H, Nq, Nk) float32

    naive = timing.measure_point(NaiveAttention(), point_shape, settings(), CPU)
    flash = timing.measure_point(FlashAttention(), point_shape, settings(), CPU)

    assert naive["status"] == flash["status"] == "ok"
    assert naive["memory"]["bytes"] >= scores
    output = 2 * 4 * 256 * 64 * 4
    assert output <= flash["memory"]["bytes"] < scores / 4
    assert naive["flops"]["count"] == 4 * 2 * 4 * 256 * 512 * 64
    assert naive["input_sets"] == 2 and naive["latency"]["count"] == 3
    assert naive["latency"]["cold_ms"] > 0 and naive["tflops"] > 0


def test_a_point_is_a_measurement_plus_bench_fields():
    point = timing.measure_point(
        NaiveAttention(), shape(nq=32, nk=64), settings(masked=True, padded_fraction=0.5), CPU
    )
    bench_only = {"source", "tflops", "kept_fraction", "kernel", "io_bytes", "bytes_per_second"}
    measurement = Measurement.from_dict({k: v for k, v in point.items() if k not in bench_only})

    assert measurement.status == "ok" and measurement.shape.padded_fraction == 0.5
    assert measurement.shape.passes == "fwd" and measurement.shape.device == "cpu"
    assert point["io_bytes"] == timing.input_bytes(measurement.shape)
    assert point["kept_fraction"] is None  # naive reports no kept fraction
    default = timing.measure_point(NaiveAttention(), shape(nq=32, nk=64), settings(), CPU)
    assert default["shape"]["padded_fraction"] == 0.0, "a mask, all real, as the model passes"
    unmasked = timing.measure_point(
        NaiveAttention(), shape(nq=32, nk=64), settings(masked=False), CPU
    )
    assert unmasked["shape"]["padded_fraction"] is None


def test_forward_backward_point_uses_the_3_5x_convention_and_counts_gradients():
    point = timing.measure_point(NaiveAttention(), shape(passes="fwd+bwd"), settings(), CPU)
    forward = timing.measure_point(NaiveAttention(), shape(), settings(), CPU)

    assert point["status"] == "ok"
    assert point["flops"]["count"] == 3.5 * forward["flops"]["count"]
    # saved scores + input gradients
    assert point["memory"]["bytes"] > forward["memory"]["bytes"]


def test_rotation_is_limited_by_the_memory_budget():
    few = timing.measure_point(
        NaiveAttention(), shape(), settings(rotate=5, rotate_budget_mb=0.0), CPU
    )
    many = timing.measure_point(NaiveAttention(), shape(), settings(rotate=5), CPU)

    assert few["input_sets"] == 1
    assert many["input_sets"] == 5


# Typed points: real backends that refuse, run out of memory, fail, or have no gradient.


@pytest.mark.parametrize(
    ("backend", "passes", "status", "reason"),
    [
        (Refusing(), "fwd", "unsupported", "needs head_dim 128"),
        (OutOfHostMemory(), "fwd", "oom", "can't allocate memory"),
        (Broken(), "fwd", "failed", "ValueError: bad kernel"),
        (Constant(), "fwd+bwd", "unsupported", "does not depend differentiably"),
    ],
)
def test_points_that_cannot_run_are_typed(backend, passes, status, reason):
    point = timing.measure_point(backend, shape(passes=passes), settings(), CPU)

    assert point["status"] == status
    assert reason in point["reason"]
    assert point["latency"] is None and point["memory"] is None and "tflops" not in point
    assert point["shape"]["nq"] == 256


def test_a_point_projected_above_the_memory_cap_is_oom_without_running():
    point = timing.measure_point(
        Broken(), shape(), settings(memory_cap_gb=1.0), CPU, projected_bytes=2**31
    )

    assert point["status"] == "oom"
    assert "projected peak 2.00 GiB" in point["reason"]


# Analysis on synthetic data.


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_exponent_fit_recovers_a_power_law(power):
    lengths = [128, 256, 512, 1024, 2048]
    noise = [1.02, 0.98, 1.01, 0.99, 1.0]
    values = [3.0 * n**power * e for n, e in zip(lengths, noise, strict=True)]

    assert analysis.fit_exponent(lengths, values) == pytest.approx(power, abs=0.03)
    assert analysis.fit_exponent([512], [1.0]) is None
    assert analysis.fit_exponent([512, 512], [1.0, 2.0]) is None


def synthetic(backend: str, lengths, times, statuses=None, memory=None) -> list[dict]:
    points = []
    for i, (n, t) in enumerate(zip(lengths, times, strict=True)):
        status = (statuses or ["ok"] * len(lengths))[i]
        measurement = Measurement(shape(n, n).attention(CPU, None), status=status)
        point = {"backend": backend, **measurement.to_dict(), "source": ""}
        if status == "ok":
            point.update(
                latency={"median_ms": t, "iqr_ms": 0.0, "count": 3, "cold_ms": t},
                memory={"bytes": (memory or (lambda n: n * n))(n), "method": "test"},
                flops={"count": 4 * 2 * 4 * n * n * 64, "convention": "test"},
                io_bytes=2 * 4 * 64 * 2 * (2 * n) * 4,
            )
        points.append(point)
    return points


LENGTHS = [256, 512, 1024, 2048, 4096]


@pytest.mark.parametrize(
    ("candidate", "statuses", "expected"),
    [
        ([5, 4, 2.9, 2, 1], None, 1024),  # reference: 2, 2.5, 3, 3.5, 4 (see below)
        ([5, 4, 3, 2, 1], None, 2048),  # a tie is not a win
        ([9, 9, 9, 9, 9], None, None),
        ([1, 9, 1, 1, 1], None, 1024),  # an early win that is lost again does not count
        ([9, 9, 9, 9, 9], ["ok", "ok", "ok", "oom", "oom"], 2048),  # reference ran out
        ([1, 1, 1, 1, 1], None, 256),
    ],
)
def test_crossover_is_the_length_from_which_a_backend_keeps_winning(candidate, statuses, expected):
    reference = synthetic("flash", LENGTHS, [2, 2.5, 3, 3.5, 4], statuses)
    mine = synthetic("sparse", LENGTHS, candidate)

    assert analysis.crossover_length(mine, reference) == expected
    rows = analysis.crossovers(mine + reference, ["flash", "naive"])
    assert [(r["backend"], r["reference"], r["length"]) for r in rows] == [
        ("sparse", "flash", expected)
    ]


def test_exponents_per_backend_and_series():
    points = synthetic("naive", LENGTHS, [n**2 / 1e4 for n in LENGTHS])
    points += synthetic("linear", LENGTHS, [n / 1e3 for n in LENGTHS], memory=lambda n: 64 * n)

    rows = {r["backend"]: r for r in analysis.exponents(points)}

    assert rows["naive"]["time_exponent"] == pytest.approx(2.0)
    assert rows["naive"]["memory_exponent"] == pytest.approx(2.0)
    assert rows["linear"]["time_exponent"] == pytest.approx(1.0)
    assert rows["linear"]["memory_exponent"] == pytest.approx(1.0)
    assert "Nk/Nq=1" in rows["naive"]["series"]


def test_roofline_fractions_from_the_measured_roofs():
    points = synthetic("flash", [1024], [10.0])
    analysis.add_roofline(points, {"matmul_tflops": 1.0, "copy_gbs": 100.0})
    point = points[0]

    work = 4 * 2 * 4 * 1024 * 1024 * 64
    intensity = work / point["io_bytes"]
    attainable = min(1e12, intensity * 100e9)
    assert point["roofline_fraction"] == pytest.approx(work / 10e-3 / attainable)
    assert point["io_floor_ms"] == pytest.approx(point["io_bytes"] / 100e9 * 1e3)
    assert point["io_fraction"] == pytest.approx(point["io_floor_ms"] / 10.0)

    approximate = synthetic("linear", [1024], [10.0])
    approximate[0]["exact"] = False
    analysis.add_roofline(approximate, {"matmul_tflops": 1.0, "copy_gbs": 100.0})
    assert "roofline_fraction" not in approximate[0] and approximate[0]["io_fraction"] > 0


def test_checks_report_their_figure_and_verdict():
    points = synthetic("naive", [1024], [30.0]) + synthetic("flash", [1024], [10.0])
    points += synthetic("sparse", [1024], [1.0])
    points[-1]["kept_fraction"] = 0.2
    checks = [
        {"name": "fast", "kind": "speedup", "backend": "flash", "over": "naive", "min": 2.0},
        {"name": "slow", "kind": "speedup", "backend": "naive", "over": "flash", "min": 1.0},
        {"kind": "skipped_fraction", "backend": "sparse", "min": 0.75},
        {"kind": "speedup_per_kept", "backend": "sparse", "over": "flash", "min": 0.6},
        {"kind": "vs_fastest_bare", "backend": "flash", "min": 0.95},
    ]

    results = analysis.evaluate_checks(checks, points, [], [])

    assert [r["passed"] for r in results] == [True, False, True, True, False]
    assert results[0]["value"] == pytest.approx(3.0)
    assert results[2]["value"] == pytest.approx(0.8)
    assert results[3]["value"] == pytest.approx(10.0 * 0.2)
    assert "not measured" in results[4]["detail"]
    with pytest.raises(UserError, match="kind 'fastest'"):
        analysis.evaluate_checks([{"kind": "fastest"}], points, [], [])


# Grids and plans.


def test_grid_shapes_cross_every_axis_with_lengths_innermost():
    chosen = settings(nq=[64, 128], nk=[256], batch=[1, 2], passes=["fwd", "fwd+bwd"])
    shapes = grid.expand(chosen, [(nq, nk, "") for nq, nk in grid.length_pairs(chosen)])

    assert len(shapes) == 2 * 2 * 2
    assert [(s.nq, s.nk) for s in shapes[:2]] == [(64, 256), (128, 256)]
    assert grid.length_pairs(settings(nq=[64, 128], square=True)) == [(64, 64), (128, 128)]
    assert grid.length_pairs(settings(pairs=[[1, 2]])) == [(1, 2)]
    assert grid.scaling_lengths(settings(start_length=100, max_length=500, nk_per_nq=2.0)) == [
        (100, 200),
        (200, 400),
        (400, 800),
    ]


def test_scaling_series_stops_at_the_time_cap():
    config = compose(
        [
            "backend=naive",
            "bench=scaling",
            "bench.start_length=32",
            "bench.max_length=1024",
            "bench.time_cap_ms=0",
            "bench.batch=[1]",
            "bench.heads=[1]",
            "bench.head_dim=[8]",
            "bench.roofline=false",
            "logger=none",
        ],
        get_registry(),
    )
    report = run_bench(plan_bench(config, get_registry()))

    assert [p["shape"]["nq"] for p in report["points"]] == [32]
    assert report["stops"][0]["backend"] == "naive"
    assert "time cap" in report["stops"][0]["reason"]


def test_comma_list_selects_backends_and_each_keeps_its_own_options():
    registry = get_registry()
    config = compose(["backend=flash,sparse", "backend.sparse.window=3", "logger=none"], registry)
    plan = plan_bench(config, registry)

    assert list(plan.backends) == ["flash", "sparse"]
    assert plan.backends["sparse"].options.window == 3
    assert plan.backend_options["flash"] == {"kernel": "auto", "layout": "padded"}
    assert plan.settings.preset == "quick"


def test_presets_set_their_own_backends_and_options():
    registry = get_registry()
    plan = plan_bench(compose(["bench=acceptance_gpu", "logger=none"], registry), registry)

    assert list(plan.backends) == ["flash", "sparse", "linear"]
    assert plan.backends["sparse"].options.block_size == 128
    assert plan.settings.bare and len(plan.settings.checks) == 7


def fake_task(name: str, build):
    @dataclasses.dataclass
    class Options:
        pass

    class Plugin:
        @xbench.hookimpl
        def xbench_register_tasks(self, register):
            register(TaskSpec(name=name, modality="text", build=build, options=Options))

    return (name, Plugin())


def test_real_shapes_come_from_each_task_built_with_defaults():
    def lengths(options):
        return type("Built", (), {"target_length": 24, "source_length": 300})()

    def broken(options):
        raise OSError("no data")

    registry = load_registry(
        [fake_task("short", lengths), fake_task("broken", broken)], use_entry_points=False
    )

    rows = {r["task"]: r for r in task_lengths(registry, [])}

    assert (rows["short"]["nq"], rows["short"]["nk"]) == (24, 300)
    assert "OSError: no data" in rows["broken"]["error"]


# Bad input: one line, exit 2, before anything is measured.


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench=quik"], "unknown bench preset 'quik'"),
        (["bench=quik"], "Did you mean 'quick'?"),
        (["backend=flsh,naive"], "Did you mean 'flash'?"),
        (["bench.repets=3"], "repets"),
        (["bench.repeats=0"], "bench.repeats=0 is out of range"),
        (["bench.dtype=[float8]"], "bench.dtype[0]='float8' is not allowed; choose one of:"),
        (["bench.dtype=float32"], "bench.dtype='float32' must be a list of str"),
        (["bench.dtype=[]"], "bench.dtype is empty; choose from: float32"),
        (["bench.passes=[fwd,bwd]"], "bench.passes[1]='bwd' is not allowed"),
        (["bench.nq=256"], "bench.nq=256 must be a list of int"),
        (["bench.nq=[256,0]"], "bench.nq[1]=0 is out of range; allowed range is [1, inf]"),
        (["bench.heads=[8.5]"], "bench.heads[0]=8.5 must be of type int"),
        (["bench.pairs=[[true,2]]"], "bench.pairs[0][0]=True must be of type int"),
        (["bench.pairs=[[128,-1]]"], "bench.pairs[0][1]=-1 is out of range"),
        (["bench.pairs=[128]"], "bench.pairs[0]=128 must be a list of int"),
        (["bench.pairs=[[1,2,3]]"], "bench.pairs[0]=[1, 2, 3] must be [Nq, Nk]: two lengths"),
        (["bench.mode=fast"], "bench.mode='fast' is not allowed"),
        (["backend=sparse", "backend.sparse.window=-1"], "backend.sparse.window=-1"),
        (["backend=naive", "backend.naive.window=2"], "window"),
        (["bench.tasks=[nope]"], "unknown task 'nope'"),
        (["threads=0"], "threads=0"),
    ],
)
def test_bad_overrides_are_one_line_errors(args, message, capsys):
    assert main(["bench", "logger=none", *args]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("xbench: error:") and message in err[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["logger=wandb", "logger.mode=bogus"], "logger.mode='bogus' is not allowed"),
        (["logger=wandb", "logger.mode=1"], "logger.mode=1 is not allowed"),
    ],
)
def test_bad_logger_settings_stop_the_bench_before_anything_is_measured(
    args, message, capsys, monkeypatch, tmp_path
):
    measured = []
    monkeypatch.setattr(timing, "measure_point", lambda *a, **k: measured.append(a))

    assert main(["bench", "bench=quick", f"output_root={tmp_path}", *args]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("xbench: error:") and message in err[0]
    assert measured == [] and not any(tmp_path.iterdir())


def test_usage_lists_every_setting_with_its_default_and_allowed_values():
    text = usage()

    assert "  bench.repeats=10: timed calls; median and IQR are reported (range [1, inf])" in text
    for row in describe_options(grid.BenchSettings):
        assert f"  bench.{row.name}={row.default!r}: " in text


def test_device_cuda_without_a_gpu_is_a_user_error():
    if torch.cuda.is_available():
        assert grid.resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(UserError, match="no CUDA device"):
            grid.resolve_device("cuda")
    assert grid.resolve_device("cpu") == CPU


def test_padded_fraction_without_a_mask_is_a_user_error():
    with pytest.raises(UserError, match="bench.padded_fraction=0.2 .* drop bench.masked=false"):
        grid.check_settings(settings(masked=False, padded_fraction=0.2))
    assert grid.padded_fraction(settings(padded_fraction=0.2)) == 0.2
    assert grid.padded_fraction(settings()) == 0.0, "the model's all-real mask by default"
    assert grid.padded_fraction(settings(masked=False)) is None


def test_a_report_records_the_machine_load_and_flags_contention(monkeypatch):
    """CPU figures read slower when other work competes for the cores: the report keeps the
    load at the start and end of the measurements, and the console says when it was high."""
    import os

    from rich.console import Console

    from xbench.bench.output import print_report

    config = compose(
        [
            "backend=naive",
            "bench.nq=[16]",
            "bench.nk=[16]",
            "bench.batch=[1]",
            "bench.heads=[1]",
            "bench.head_dim=[8]",
            "bench.passes=[fwd]",
            "bench.repeats=1",
            "bench.warmup=0",
            "bench.roofline=false",
            "logger=none",
        ],
        get_registry(),
    )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 3.0, 0.0, 0.0))

    report = run_bench(plan_bench(config, get_registry()))

    assert report["load"]["start"]["load_1m"] == cores + 3.0
    assert report["load"]["start"]["contended"] and report["load"]["end"]["contended"]
    console = Console(record=True, width=200)
    print_report(report, console)
    text = console.export_text()
    assert f"(loaded) machine load: {cores + 3.0:.2f} at start" in text

    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    quiet = run_bench(plan_bench(config, get_registry()))
    console = Console(record=True, width=200)
    print_report(quiet, console)
    text = console.export_text()
    assert "machine load: 0.00 at start" in text and "(loaded)" not in text

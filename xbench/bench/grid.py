"""What a bench run measures: its validated settings and the shapes they expand to.

Three ways to choose lengths (``bench.mode``):

- ``grid``: every (Nq, Nk) of ``pairs``, or the product ``nq × nk`` (``nk = nq`` with
  ``square``), crossed with every batch, heads, head_dim, dtype and pass;
- ``scaling``: ``Nq = n``, ``Nk = n·nk_per_nq`` for ``n = start_length, 2·start_length, ...``
  up to ``max_length``; each backend's series stops at its first OOM or time cap;
- ``real_shapes``: each installed task's own target (Nq) and source (Nk) lengths.

Passes: ``fwd``, ``fwd+bwd`` and ``decode`` (``attend`` of Nq query rows, 1 for one decode
step, against a memory ``prepare`` built before timing; its one-off cost is reported apart).
A decode series holds Nq fixed and lets Nk grow; the others keep Nk/Nq fixed.

Padding (``bench.masked``, on by default because the model always passes its source mask,
and a mask changes some kernels' cost; ``masked=false`` is the no-mask case): the even
spread of ``bench.padded_fraction`` (0: every key real) or, with
``bench.lengths=uniform|lognormal``, per-item source lengths drawn from that distribution
(:mod:`xbench.bench.lengths`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields

import torch

from xbench.api.errors import UserError
from xbench.api.options import option
from xbench.measure.inputs import DTYPES
from xbench.measure.types import PASSES, AttentionShape, AttentionSizes

MODES = ("grid", "scaling", "real_shapes")
DEVICES = ("auto", "cpu", "cuda")
LENGTH_DISTRIBUTIONS = ("fixed", "uniform", "lognormal")


@dataclass
class BenchSettings:
    """The ``bench`` node of ``xbench bench`` (a preset from ``configs/bench`` plus overrides)."""

    preset: str = option("custom", help="name shown in outputs")
    mode: str = option("grid", help="how lengths are chosen", choices=MODES)
    nq: list[int] = option(default_factory=lambda: [256], help="grid: query lengths", min=1)
    nk: list[int] = option(default_factory=lambda: [256], help="grid: key lengths", min=1)
    square: bool = option(False, help="grid: Nk = Nq (nk is ignored)")
    pairs: list[list[int]] = option(
        default_factory=list, help="grid: explicit [Nq, Nk] pairs instead of nq × nk", min=1
    )
    start_length: int = option(128, help="scaling: first Nq", min=1)
    max_length: int = option(65536, help="scaling: largest Nq tried", min=1)
    nk_per_nq: float = option(1.0, help="scaling: Nk / Nq", min=0.0)
    time_cap_ms: float = option(2000.0, help="scaling: stop a series after a slower point", min=0)
    memory_cap_gb: float = option(
        8.0, help="CPU: a point projected above this peak is recorded as oom", min=0.0
    )
    tasks: list[str] = option(default_factory=list, help="real_shapes: tasks (empty: all)")
    batch: list[int] = option(default_factory=lambda: [4], help="batch sizes B", min=1)
    heads: list[int] = option(default_factory=lambda: [8], help="heads H", min=1)
    head_dim: list[int] = option(default_factory=lambda: [64], help="head dims D (= Dv)", min=1)
    dtype: list[str] = option(
        default_factory=lambda: ["float32"], help="input dtypes", choices=tuple(DTYPES)
    )
    passes: list[str] = option(
        default_factory=lambda: ["fwd"],
        help="fwd, fwd+bwd and/or decode (attend against a memory prepared before timing)",
        choices=PASSES,
    )
    cpu_max_nk: int = option(
        0, help="CPU: leave out grid points with Nk above this (0: none); GPUs run them", min=0
    )
    device: str = option("auto", help="auto: cuda when available", choices=DEVICES)
    warmup: int = option(3, help="untimed calls before timing", min=0)
    repeats: int = option(10, help="timed calls; median and IQR are reported", min=1)
    rotate: int = option(3, help="input sets cycled through so caches don't flatter", min=1)
    rotate_budget_mb: float = option(
        1024.0, help="fewer input sets when they would exceed this", min=0.0
    )
    masked: bool = option(
        True,
        help="pass a key_padding_mask to every call, as the model always does (all real "
        "unless padded_fraction or lengths pad); false: the no-mask case",
    )
    padded_fraction: float = option(
        0.0, help="masked: share of keys padded, ragged across the batch", min=0.0, max=1.0
    )
    lengths: str = option(
        "fixed",
        help="masked: real source lengths per item; fixed (padded_fraction's even spread), "
        "or drawn (seeded) uniform / lognormal over [min_length, Nk]",
        choices=LENGTH_DISTRIBUTIONS,
    )
    min_length: int = option(1, help="uniform / lognormal: shortest source length", min=1)
    lognormal_median: float = option(
        0.5, help="lognormal: median source length as a share of Nk", min=0.001, max=1.0
    )
    lognormal_sigma: float = option(
        0.5, help="lognormal: standard deviation of the log length", min=0.0
    )
    variants: list[dict] = option(
        default_factory=list,
        help="more instances of a measured backend with other options, "
        "e.g. {backend: flash, options: {layout: packed}}",
    )
    references: list[str] = option(
        default_factory=lambda: ["naive", "flash"], help="backends the crossovers compare with"
    )
    roofline: bool = option(True, help="measure matmul peak and copy bandwidth in the run")
    bare: bool = option(False, help="also time bare SDPA kernels and a bare do_bench per point")
    plots: bool = option(True, help="write latency and memory PNG plots")
    checks: list[dict] = option(default_factory=list, help="acceptance checks to evaluate")
    seed: int = option(0, help="seed of the random inputs")


@dataclass(frozen=True)
class Shape(AttentionSizes):
    """One point of the grid, apart from the backend and the device."""

    passes: str
    source: str = field(default="", compare=False)  # e.g. the task a real shape came from

    def attention(self, device: torch.device, padded_fraction: float | None) -> AttentionShape:
        """The measured shape on ``device`` (``padded_fraction`` None: no mask)."""
        sizes = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "source"}
        return AttentionShape(**sizes, device=str(device), padded_fraction=padded_fraction)


def padded_fraction(settings: BenchSettings) -> float | None:
    """The padded share of the points' masks, or None when they get no mask."""
    return settings.padded_fraction if settings.masked else None


def check_settings(settings: BenchSettings) -> None:
    """What the option metadata cannot express (element types, ranges and choices are
    checked by ``build_options``): pairs of two, non-empty dtype and passes, a mask to pad."""
    for i, pair in enumerate(settings.pairs):
        if len(pair) != 2:
            raise UserError(f"bench.pairs[{i}]={pair!r} must be [Nq, Nk]: two lengths")
    for name, choices in (("dtype", DTYPES), ("passes", PASSES)):
        if not getattr(settings, name):
            raise UserError(f"bench.{name} is empty; choose from: {', '.join(choices)}")
    if settings.padded_fraction and not settings.masked:
        raise UserError(
            f"bench.padded_fraction={settings.padded_fraction:g} pads keys of a mask; "
            "drop bench.masked=false"
        )
    if settings.lengths != "fixed":
        check_drawn_lengths(settings)


def check_drawn_lengths(settings: BenchSettings) -> None:
    """Drawn lengths need a mask, exclude padded_fraction and fit every grid Nk."""
    drawn = f"bench.lengths={settings.lengths}"
    if not settings.masked:
        raise UserError(f"{drawn} draws a padding mask; drop bench.masked=false")
    if settings.padded_fraction:
        raise UserError(
            f"{drawn} sets the padding itself; drop bench.padded_fraction="
            f"{settings.padded_fraction:g}"
        )
    if settings.mode == "grid":
        shortest = min(nk for _, nk in length_pairs(settings))
        if settings.min_length > shortest:
            raise UserError(
                f"bench.min_length={settings.min_length} exceeds the shortest grid Nk={shortest}"
            )


def length_pairs(settings: BenchSettings) -> list[tuple[int, int]]:
    """The (Nq, Nk) pairs of ``grid`` mode."""
    if settings.pairs:
        return [(nq, nk) for nq, nk in settings.pairs]
    if settings.square:
        return [(n, n) for n in settings.nq]
    return list(itertools.product(settings.nq, settings.nk))


def scaling_lengths(settings: BenchSettings) -> list[tuple[int, int]]:
    """(Nq, Nk) of ``scaling`` mode, doubling from ``start_length`` to ``max_length``."""
    pairs, n = [], settings.start_length
    while n <= settings.max_length:
        pairs.append((n, max(1, round(n * settings.nk_per_nq))))
        n *= 2
    return pairs


def expand(settings: BenchSettings, pairs: list[tuple[int, int, str]]) -> list[Shape]:
    """Every shape: (Nq, Nk, source) pairs crossed with the other axes, lengths innermost."""
    shapes = []
    for batch, heads, dim, dtype, passes in itertools.product(
        settings.batch, settings.heads, settings.head_dim, settings.dtype, settings.passes
    ):
        for nq, nk, source in pairs:
            shapes.append(Shape(batch, heads, nq, nk, dim, dtype, passes, source))
    return shapes


def series_key(shape: Shape) -> tuple:
    """Points that differ only in length form one scaling series: at a fixed Nk/Nq, or for
    ``decode`` at a fixed Nq (the query rows of a step) while the memory Nk grows."""
    fixed = f"Nq={shape.nq}" if shape.passes == "decode" else f"Nk/Nq={shape.nk / shape.nq:.6g}"
    return (shape.batch, shape.heads, shape.head_dim, shape.dtype, shape.passes, fixed)


def cap_cpu_lengths(
    settings: BenchSettings, shapes: list[Shape], device: torch.device
) -> tuple[list[Shape], list[int]]:
    """The shapes this device measures, and the Nk left out by ``bench.cpu_max_nk``."""
    cap = settings.cpu_max_nk
    if device.type != "cpu" or not cap:
        return shapes, []
    kept = [s for s in shapes if s.nk <= cap]
    return kept, sorted({s.nk for s in shapes if s.nk > cap})


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("bench.device=cuda but no CUDA device is available; use cpu or auto")
    return torch.device(name)

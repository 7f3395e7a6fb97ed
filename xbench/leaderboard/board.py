"""The leaderboard: run records become one table per task and tier, a row per
configuration with its seeds averaged, sorted by the task's primary metric in its own
direction. Each row's metric is compared with the reference row of its configuration
(flash unless chosen) on the same test examples, with a paired bootstrap interval
(:mod:`xbench.leaderboard.paired`), and each board gets the control's verdict
(:mod:`xbench.leaderboard.verdict`).

Every view (console, Markdown, CSV, HTML, wandb) reads the :class:`TaskBoard` objects built
here, so they always agree.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xbench.api.errors import first_line
from xbench.leaderboard.paired import (
    CONFIDENCE,
    RESAMPLES,
    NotPaired,
    PairedDifference,
    paired_difference,
)
from xbench.leaderboard.verdict import CONTROL, ControlVerdict, control_verdict
from xbench.records.examples import ExampleScores
from xbench.records.result import (
    LOAD_MOMENTS,
    NOT_HASHED,
    Efficiency,
    Fidelity,
    RunResult,
    config_hash,
)
from xbench.views.units import format_bytes

log = logging.getLogger(__name__)
BASELINE = "flash"
# Row attributes compared with the baseline row (also their CSV column names).
FIGURES = (
    "train_ms",
    "prefill_ms",
    "decode_ms",
    "memory_bytes",
    "train_steps_per_s",
    "achieved_steps_per_s",
    "infer_tokens_per_s",
)


@dataclass
class Row:
    """One configuration of one task on one device, over its seeds."""

    label: str  # the backend, plus the settings that set this row apart from the others
    backend: str
    status: str  # ok when at least one seed finished, else the failing status
    reason: str  # first line of the (first) error, or why x-attn is blank; else empty
    seeds: list[int]  # seeds of the finished runs averaged here
    runs: int  # records combined (finished or not)
    primary: float | None
    primary_std: float | None  # sample standard deviation over seeds (None below 2)
    train_ms: float | None  # cross-attention's train phase (fwd+bwd), median ms
    prefill_ms: float | None  # its forward at a test batch (CSV and wandb only)
    decode_ms: float | None  # one decode step's cross-attention against prepared memory
    memory_bytes: float | None  # peak bytes of the train phase
    train_steps_per_s: float | None  # 1 / the median step
    achieved_steps_per_s: float | None  # optimiser steps over the fit's wall time
    infer_tokens_per_s: float | None  # greedy decoding of the test split (cached decoder)
    train_share: float | None  # of a training step, all decoder layers' cross-attention
    decode_share: float | None  # of a decoding step
    device: str
    loaded: list[str]  # when a seed's machine was under contention: train and/or measure
    run_dirs: list[str]
    peers: str  # the configuration but the backend: rows compared with each other share it
    exact: bool = True  # the backend computes exact attention (the record's backend.exact)
    test_examples: int | None = None  # test examples scored (None: older records)
    sidecars: dict[int, str] = field(default_factory=dict)  # seed -> its examples.json
    baseline: str | None = None  # label of the flash row the ratios divide by
    mass_on_truth: float | None = None  # attention share on the true source positions
    uniform_mass: float | None = None  # what uniform attention scores there (chance)
    aer: float | None = None  # alignment error rate of the argmax key
    vs_baseline: dict[str, float | None] = field(default_factory=dict)
    reference: str | None = None  # label of the row the difference is taken against
    difference: PairedDifference | None = None  # this row minus the reference, paired
    unpaired: str = ""  # why there is no difference although both rows have sidecars
    measures_cross_attention: bool | None = None  # the control's verdict of its peers
    trained_with: str | None = None  # swap-in rows: the backend the weights were trained with
    trained_primary: float | None = None  # ... and their own quality with it (seed mean)


@dataclass
class TaskBoard:
    """The rows of one task and tier, best first. ``baseline`` is the backend ratios refer
    to, None when no row has a flash row of its own configuration and device (each row's
    ``Row.baseline`` names the one it was divided by). ``reference`` is the backend the
    differences are taken against; ``verdicts`` one per control row (none: no control)."""

    task: str
    metric: str
    higher_is_better: bool
    rows: list[Row]
    baseline: str | None
    descriptions: dict[str, str]  # backend name -> its plugin's description
    tier: str = "default"
    reference: str = BASELINE
    verdicts: list[ControlVerdict] = field(default_factory=list)
    sparsity: list[SparsityLine] = field(default_factory=list)  # from exact rows; 0 or 1

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def key(self) -> str:
        """The board's name in file names and wandb keys: the task, plus its tier unless
        that is ``default``."""
        return self.task if self.tier == "default" else f"{self.task}-{self.tier}"

    @property
    def title(self) -> str:
        return self.task if self.tier == "default" else f"{self.task} (tier {self.tier})"


#: The sparsity figures a board averages over its exact rows (SparsityProfile fields).
SPARSITY_FIGURES = (
    "real_keys",
    "keys_50",
    "keys_90",
    "keys_99",
    "fraction_50",
    "fraction_90",
    "fraction_99",
    "entropy",
    "entropy_normalised",
)


@dataclass
class SparsityLine:
    """How concentrated exact attention is on one task and tier: the mean over its exact
    backends' finished runs of each :class:`~xbench.records.result.SparsityProfile`
    figure (last decoder layer; None where no run measured it)."""

    tier: str
    backends: list[str]
    runs: int
    figures: dict[str, float | None]


def build_leaderboard(
    found: Iterable[tuple[Path, RunResult]], reference: str = BASELINE
) -> list[TaskBoard]:
    """Boards per task and tier (sorted by task, the default tier first) from records
    found on disk; differences are taken against the ``reference`` backend's rows.

    A record copied by resume appears once (same run id); a configuration that was run
    again keeps its newest record per device.
    """
    newest: dict[tuple[str, str], tuple[Path, RunResult]] = {}
    seen_ids: set[str] = set()
    for path, record in sorted(found, key=lambda item: item[1].created):
        if record.run_id in seen_ids:
            continue
        seen_ids.add(record.run_id)
        newest[(record.config_hash, device_of(record))] = (path, record)
    cells: dict[tuple[str, str, str, str], list[tuple[Path, RunResult]]] = {}
    for path, record in newest.values():
        key = (record.task.name, record.tier, _cell_key(record), device_of(record))
        cells.setdefault(key, []).append((path, record))
    boards = sorted({k[:2] for k in cells}, key=lambda b: (b[0], b[1] != "default", b[1]))
    return [
        _task_board(*board, [c for k, c in cells.items() if k[:2] == board], reference)
        for board in boards
    ]


def device_of(record: RunResult) -> str:
    """Where the figures were measured, e.g. ``NVIDIA H100`` or ``cpu (Xeon…, 2 threads)``."""
    env = record.environment
    device = env.device or "unknown"
    if device == "cpu" and env.cpu:
        return f"cpu ({env.cpu}, {env.threads} threads)"
    return device


def _cell_key(record: RunResult) -> str:
    """The configuration without its seed: the seeds of one cell share it."""
    return config_hash({**record.config, "seed": None})


def _peer_key(record: RunResult) -> str:
    """The configuration without its seed and backend: task and its options, model,
    trainer budget, optimiser, measurement settings. Only rows that share it (and the
    device) are divided by each other."""
    return config_hash({**record.config, "seed": None, "backend": None})


def _task_board(
    task: str, tier: str, cells: list[list[tuple[Path, RunResult]]], reference: str
) -> TaskBoard:
    records = [record for cell in cells for _, record in cell]
    finished = [r for r in records if r.status == "ok" and r.quality.primary_metric] or records
    first = finished[0]
    metric = first.quality.primary_metric or first.task.primary_metric
    higher = first.quality.higher_is_better
    if higher is None:
        higher = first.task.higher_is_better
    labels = _labels([cell[0][1].config for cell in cells])
    rows = [_row(label, cell) for label, cell in zip(labels, cells, strict=True)]
    rows.sort(key=_sort_key(higher is not False))
    for row in rows:
        baseline = _baseline(row, rows)
        row.baseline = baseline.label if baseline else None
        row.vs_baseline = _ratios(row, baseline)
    verdicts = _compare(rows, reference, higher is not False)
    return TaskBoard(
        task=task,
        metric=metric or "primary",
        higher_is_better=higher is not False,
        rows=rows,
        baseline=BASELINE if any(row.baseline for row in rows) else None,
        descriptions={r.backend.name: r.backend.description for r in records},
        tier=tier,
        reference=reference,
        verdicts=verdicts,
        sparsity=sparsity_lines(records),
    )


def _compare(rows: list[Row], reference: str, higher_is_better: bool) -> list[ControlVerdict]:
    """Each row's paired difference to its reference row, and each control row's verdict,
    which the rows of its configuration carry (``Row.measures_cross_attention``)."""
    loaded: dict[str, ExampleScores | None] = {}
    verdicts = []
    for row in rows:
        base = _baseline(row, rows, reference)
        row.reference = base.label if base else None
        if base is not None and base is not row:
            row.difference, row.unpaired = _difference(row, base, loaded)
        if row.backend == CONTROL and row.status == "ok":
            verdict = control_verdict(
                row.label,
                row.reference,
                base is not None and base.exact,
                row.difference,
                row.unpaired,
                higher_is_better,
            )
            verdicts.append(verdict)
            for peer in rows:
                if peer.peers == row.peers and peer.device == row.device:
                    peer.measures_cross_attention = verdict.measures
    return verdicts


def _difference(
    row: Row, base: Row, loaded: dict[str, ExampleScores | None]
) -> tuple[PairedDifference | None, str]:
    """``row`` minus ``base`` on their shared seeds' test examples, or why not. Rows
    without sidecars (older records, tasks without per-example statistics) get neither."""
    mine, theirs = _sidecars(row, loaded), _sidecars(base, loaded)
    if not mine or not theirs:
        return None, ""
    try:
        return paired_difference(mine, theirs), ""
    except NotPaired as error:
        return None, f"not paired with {base.label}: {error}"


def _sidecars(row: Row, loaded: dict[str, ExampleScores | None]) -> dict[int, ExampleScores]:
    """The row's readable sidecars by seed; one that cannot be read is left out with a
    warning naming it."""
    for path in row.sidecars.values():
        if path not in loaded:
            try:
                loaded[path] = ExampleScores.load(path)
            except (OSError, ValueError) as error:
                log.warning("skipping %s: %s", path, error)
                loaded[path] = None
    return {seed: s for seed, path in row.sidecars.items() if (s := loaded[path]) is not None}


def sparsity_lines(records: list[RunResult]) -> list[SparsityLine]:
    """The board's :class:`SparsityLine` (its records share one tier) from the finished
    runs of exact backends that measured a sparsity profile; empty when none did."""
    profiled = [
        r
        for r in records
        if r.status == "ok" and r.backend.exact and r.fidelity and r.fidelity.sparsity
    ]
    if not profiled:
        return []
    figures = {}
    for name in SPARSITY_FIGURES:
        values = [v for r in profiled if (v := getattr(r.fidelity.sparsity, name)) is not None]
        figures[name] = statistics.fmean(values) if values else None
    backends = sorted({r.backend.name for r in profiled})
    return [SparsityLine(profiled[0].tier, backends, len(profiled), figures)]


def _row(label: str, cell: list[tuple[Path, RunResult]]) -> Row:
    cell = sorted(cell, key=lambda item: item[1].seed)
    records = [record for _, record in cell]
    ok = [r for r in records if r.status == "ok"]
    failing = [r for r in records if r.status != "ok"]
    reasons = [first_line(failing[0].error)] if failing else []
    if ok and failing:
        reasons = [f"{len(failing)} of {len(records)} seeds did not finish: {reasons[0]}"]
    train_ms = _mean(ok, lambda e: e.phase_ms("train"))
    decode_ms = _mean(ok, lambda e: e.phase_ms("decode"))
    if None in (train_ms, decode_ms) and (why := _why_unmeasured(ok)):  # why blanks are blank
        reasons.append(why)
    primaries = [r.quality.primary for r in ok if r.quality.primary is not None]
    swapped = [r.swap for r in ok if r.swap is not None]
    trained = [
        s.trained_quality.primary
        for s in swapped
        if s.trained_quality and s.trained_quality.primary is not None
    ]
    return Row(
        label=label,
        backend=records[0].backend.name,
        status="ok" if ok else failing[0].status,
        reason="; ".join(reasons),
        seeds=[r.seed for r in ok],
        runs=len(records),
        primary=statistics.fmean(primaries) if primaries else None,
        primary_std=statistics.stdev(primaries) if len(primaries) > 1 else None,
        train_ms=train_ms,
        prefill_ms=_mean(ok, lambda e: e.phase_ms("prefill")),
        decode_ms=decode_ms,
        memory_bytes=_mean(ok, lambda e: e.phase_bytes("train")),
        train_steps_per_s=_mean(ok, _steps_per_second),
        achieved_steps_per_s=_mean(ok, lambda e: e.achieved_steps_per_second),
        infer_tokens_per_s=_mean(ok, lambda e: e.inference_tokens_per_second),
        train_share=_mean(ok, lambda e: _share(e, "train_share")),
        decode_share=_mean(ok, lambda e: _share(e, "decode_share")),
        device=device_of(records[0]),
        loaded=[w for w in LOAD_MOMENTS if any(w in r.efficiency.contended_at for r in ok)],
        run_dirs=[str(path.parent) for path, _ in cell],
        peers=_peer_key(records[0]),
        exact=records[0].backend.exact,
        test_examples=next((r.quality.test_examples for r in ok if r.quality.test_examples), None),
        sidecars={
            r.seed: str(path.parent / r.quality.examples_file)
            for path, r in cell
            if r.status == "ok" and r.quality.examples_file
        },
        trained_with=swapped[0].trained_with if swapped else None,
        trained_primary=statistics.fmean(trained) if trained else None,
        mass_on_truth=_fidelity(ok, "mass_on_truth"),
        uniform_mass=_fidelity(ok, "uniform_mass"),
        aer=_fidelity(ok, "aer"),
    )


def _fidelity(records: list[RunResult], name: str) -> float | None:
    """The mean of a :class:`~xbench.records.result.Fidelity` figure over the records that
    measured it (None: none did)."""
    fidelities: list[Fidelity] = [r.fidelity for r in records if r.fidelity]
    values = [float(v) for f in fidelities if (v := getattr(f, name)) is not None]
    return statistics.fmean(values) if values else None


def _why_unmeasured(records: list[RunResult]) -> str | None:
    """``x-attn train/decode oom: <reason>`` of the first record with phases that could not
    be measured, else the first record's note on its phases (an older record's origin)."""
    phases = [r.efficiency.cross_attention for r in records if r.efficiency.cross_attention]
    for measured in phases:
        if unmeasured := measured.unmeasured():
            names_by_why: dict[str, list[str]] = {}
            for name, why in unmeasured:
                names_by_why.setdefault(why, []).append(name)
            return "; ".join(f"x-attn {'/'.join(n)} {why}" for why, n in names_by_why.items())
    return next((f"x-attn: {p.note}" for p in phases if p.note), None)


def _share(efficiency: Efficiency, name: str) -> float | None:
    phases = efficiency.cross_attention
    return getattr(phases, name) if phases else None


def _mean(records: list[RunResult], figure: Callable[[Efficiency], float | None]) -> float | None:
    """The mean of a figure over the records that measured it (None: none did)."""
    values = [float(v) for r in records if (v := figure(r.efficiency)) is not None]
    return statistics.fmean(values) if values else None


def _steps_per_second(efficiency: Efficiency) -> float | None:
    step_ms = efficiency.train_step_ms
    return 1e3 / step_ms if step_ms else None


def _sort_key(higher_is_better: bool) -> Callable[[Row], tuple]:
    sign = -1 if higher_is_better else 1

    def key(row: Row) -> tuple:
        if row.status != "ok":
            return (2, 0.0, row.status, row.label)
        if row.primary is None:
            return (1, 0.0, "", row.label)
        return (0, sign * row.primary, "", row.label)

    return key


def _baseline(row: Row, rows: list[Row], backend: str = BASELINE) -> Row | None:
    """The finished ``backend`` row that differs from ``row`` in the backend alone (same
    configuration otherwise, same device); among several variants of that backend, the
    one with the shortest label, then the first by name. None: there is none."""
    candidates = [
        r
        for r in rows
        if r.backend == backend
        and r.status == "ok"
        and r.peers == row.peers
        and r.device == row.device
    ]
    return min(candidates, key=lambda r: (len(r.label), r.label), default=None)


def _ratios(row: Row, baseline: Row | None) -> dict[str, float | None]:
    """Each figure over the baseline's (all None without a baseline)."""
    ratios: dict[str, float | None] = dict.fromkeys(FIGURES)
    if baseline is None:
        return ratios
    for name in FIGURES:
        value, base = getattr(row, name), getattr(baseline, name)
        if value is not None and base:
            ratios[name] = value / base
    return ratios


def _labels(configs: list[dict[str, Any]]) -> list[str]:
    """The backend name plus every setting that differs between rows: backend options
    among rows of the same backend, other settings among all rows. A group whose
    ``name`` differs (``model=small``) is shown by that name alone."""
    ignored = (*NOT_HASHED, "seed")
    flats = [_flatten({k: v for k, v in c.items() if k not in ignored}) for c in configs]
    shared = {k for k in _varying(flats) if not k.startswith("backend.")}
    labels = []
    for flat in flats:
        same_backend = [f for f in flats if f.get("backend.name") == flat.get("backend.name")]
        own = {k for k in _varying(same_backend) if k.startswith("backend.")}
        parts = [str(flat.get("backend.name"))]
        parts += _settings(sorted(shared | own), flat)
        labels.append(" ".join(parts))
    return labels


def _settings(keys: list[str], flat: dict[str, Any]) -> list[str]:
    named = [k.removesuffix(".name") for k in keys if k.endswith(".name")]
    parts = [f"{group}={flat.get(group + '.name')}" for group in named]
    hidden = tuple(f"{group}." for group in named)
    return parts + [f"{k}={flat.get(k)}" for k in keys if not k.startswith(hidden)]


def _varying(flats: Sequence[dict[str, Any]]) -> set[str]:
    keys = {k for flat in flats for k in flat}
    missing = object()
    return {k for k in keys if len({repr(f.get(k, missing)) for f in flats}) > 1}


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            flat |= _flatten(item, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def pareto_front(points: Sequence[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of the points that no other point beats on latency (x, lower is better)
    and quality (y, in the metric's direction) at once."""
    sign = 1 if higher_is_better else -1
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            x2 <= x and sign * y2 >= sign * y and (x2 < x or sign * y2 > sign * y)
            for j, (x2, y2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}×"


def _number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def ratio_note(board: TaskBoard) -> str:
    """What the ``vs flash`` columns divide by, in one sentence (no final stop)."""
    if board.baseline is None:
        return f"no row has a {BASELINE} row of its own configuration and device, so no ratios"
    return (
        f"ratios divide each row by the {BASELINE} row that shares its configuration but"
        " the backend and its device (blank: there is none)"
    )


def display_columns(board: TaskBoard) -> list[str]:
    """Column headers of the human-readable tables."""
    versus = f"vs {BASELINE}"
    return [
        "#",
        "backend",
        "status",
        f"{board.metric} {board.arrow}",
        "seeds",
        "attn on truth",
        "AER",
        *_swap_columns(board),
        f"Δ vs {board.reference} ({CONFIDENCE:.0%} CI)",
        "x-attn train ms",
        versus,
        "x-attn decode ms",
        versus,
        "x-attn train mem",
        versus,
        "train steps/s",
        versus,
        "achieved steps/s",
        versus,
        "infer tok/s",
        versus,
        "device",
        "reason",
    ]


def display_rows(board: TaskBoard) -> list[list[str]]:
    """The rows as text, in :func:`display_columns` order (blank: not measured)."""
    out = []
    for rank, row in enumerate(board.rows, start=1):
        quality = _number(row.primary, ".4f")
        if row.primary_std is not None:
            quality += f" ± {row.primary_std:.4f}"
        seeds = f"{len(row.seeds)}" + ("" if len(row.seeds) == row.runs else f"/{row.runs}")
        ratios = row.vs_baseline
        out.append(
            [
                str(rank) if row.status == "ok" else "",
                row.label,
                row.status,
                quality,
                seeds,
                _fidelity_text(row),
                _number(row.aer, ".3f"),
                *_swap_cells(board, row),
                _difference_text(row),
                _number(row.train_ms, ".3f"),
                _ratio(ratios.get("train_ms")),
                _number(row.decode_ms, ".4f"),
                _ratio(ratios.get("decode_ms")),
                "" if row.memory_bytes is None else format_bytes(row.memory_bytes),
                _ratio(ratios.get("memory_bytes")),
                _number(row.train_steps_per_s, ".2f"),
                _ratio(ratios.get("train_steps_per_s")),
                _number(row.achieved_steps_per_s, ".2f"),
                _ratio(ratios.get("achieved_steps_per_s")),
                _number(row.infer_tokens_per_s, ".0f"),
                _ratio(ratios.get("infer_tokens_per_s")),
                row.device + (f" (loaded at {', '.join(row.loaded)})" if row.loaded else ""),
                "; ".join(filter(None, (row.reason, row.unpaired))),
            ]
        )
    return out


def _swap_columns(board: TaskBoard) -> list[str]:
    """Swap-in boards show the weights' own quality beside the swapped-in one."""
    if not any(row.trained_with for row in board.rows):
        return []
    return ["trained with", f"{board.metric} as trained"]


def _swap_cells(board: TaskBoard, row: Row) -> list[str]:
    if not _swap_columns(board):
        return []
    return [row.trained_with or "", _number(row.trained_primary, ".4f")]


def _difference_text(row: Row) -> str:
    """``+0.0123 [+0.0050, +0.0200] *`` (``*``: the interval excludes 0), ``reference``
    for the reference row itself, blank without a paired difference."""
    if row.reference is not None and row.reference == row.label:
        return "reference"
    d = row.difference
    if d is None:
        return ""
    return f"{d.delta:+.4f} [{d.low:+.4f}, {d.high:+.4f}]" + (" *" if d.resolved else "")


def board_notes(board: TaskBoard) -> list[str]:
    """What a reader needs beside the table, one sentence each: the test set and seeds,
    how to read the difference column, and the control's verdicts."""
    sizes = sorted({r.test_examples for r in board.rows if r.test_examples})
    seeds = sorted({seed for r in board.rows for seed in r.seeds})
    size = f"{' or '.join(map(str, sizes))} test examples" if sizes else "test-set size unknown"
    notes = [f"{size}; seeds {', '.join(map(str, seeds)) or 'none finished'}"]
    notes.append(
        f"Δ: the row's {board.metric} minus that of the {board.reference} row of its "
        f"configuration and device on the same test examples (mean over the seeds both "
        f"have), with a {CONFIDENCE:.0%} paired bootstrap interval over {RESAMPLES} "
        "resamples of the examples; * marks an interval that excludes 0, a difference "
        f"beyond noise; blank: no per-example scores or no {board.reference} row"
    )
    notes += [f"control: {v.text}" for v in board.verdicts] or [
        f"control: no {CONTROL} row finished on this board, so nothing says whether the task "
        "on this data measures cross-attention"
    ]
    return notes + sparsity_notes(board)


def _fidelity_text(row: Row) -> str:
    """``0.812 (chance 0.020)``: the attention share on the true positions and the share
    uniform attention would get there; blank without an alignment."""
    if row.mass_on_truth is None:
        return ""
    chance = "" if row.uniform_mass is None else f" (chance {row.uniform_mass:.3f})"
    return f"{row.mass_on_truth:.3f}{chance}"


def sparsity_notes(board: TaskBoard) -> list[str]:
    """The sentence (no final stop) of the board's sparsity profile, if it has one."""
    notes = []
    for line in board.sparsity:
        f = line.figures
        if f["keys_50"] is None:
            continue
        keys = " / ".join(_number(f[f"keys_{p}"], ".1f") for p in (50, 90, 99))
        shares = " / ".join(_number(100 * f[f"fraction_{p}"], ".0f") + "%" for p in (50, 90, 99))
        normalised = f["entropy_normalised"]
        entropy = (
            _number(f["entropy"], ".2f")
            + " nats"
            + ("" if normalised is None else f" ({normalised:.2f} of uniform)")
        )
        notes.append(
            f"sparsity, tier {line.tier} ({', '.join(line.backends)}, {line.runs} runs): "
            f"a decoder token needs {keys} keys for 50 / 90 / 99 % of its attention "
            f"({shares} of {_number(f['real_keys'], '.0f')} real keys, medians); "
            f"entropy {entropy}"
        )
    return notes


def data_records(board: TaskBoard) -> list[dict[str, Any]]:
    """The rows as raw values (CSV, wandb tables): numbers stay numbers."""
    out = []
    for rank, row in enumerate(board.rows, start=1):
        record = {
            "task": board.task,
            "tier": board.tier,
            "metric": board.metric,
            "higher_is_better": board.higher_is_better,
            "rank": rank if row.status == "ok" else None,
            "backend": row.label,
            "backend_name": row.backend,
            "status": row.status,
            "seeds": len(row.seeds),
            "runs": row.runs,
            "primary_mean": row.primary,
            "primary_std": row.primary_std,
            "seed_list": " ".join(map(str, row.seeds)),
            "test_examples": row.test_examples,
        }
        d = row.difference
        record |= {
            "reference": board.reference,
            "reference_row": row.reference,
            "delta": d.delta if d else None,
            "delta_low": d.low if d else None,
            "delta_high": d.high if d else None,
            "resolved": d.resolved if d else None,
            "paired_seeds": " ".join(map(str, d.seeds)) if d else "",
            "measures_cross_attention": row.measures_cross_attention,
            "trained_with": row.trained_with,
            "trained_primary": row.trained_primary,
        }
        for name in FIGURES:
            record[name] = getattr(row, name)
            record[f"{name}_vs_{BASELINE}"] = row.vs_baseline.get(name)
        record |= {"train_share": row.train_share, "decode_share": row.decode_share}
        record |= {
            "mass_on_truth": row.mass_on_truth,
            "uniform_mass": row.uniform_mass,
            "aer": row.aer,
        }
        record[f"{BASELINE}_row"] = row.baseline
        record |= {"device": row.device, "loaded": " ".join(row.loaded)}
        record |= {"reason": "; ".join(filter(None, (row.reason, row.unpaired)))}
        record["run_dirs"] = " ".join(row.run_dirs)
        out.append(record)
    return out

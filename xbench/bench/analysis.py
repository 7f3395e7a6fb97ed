"""What the points say: scaling exponents, crossover lengths, roofline fractions, checks.

- Scaling exponent: the slope of ``log(y)`` against ``log(Nk)`` (least squares, numpy
  ``polyfit``) over one backend's ok points of a series (same B, H, D, dtype, pass and
  Nk/Nq; for ``decode`` the same Nq), for latency and for peak memory. ~2 means quadratic
  in length, ~1 linear; a decode step that reads every key is ~1 in Nk, one whose
  prepared memory does not grow with Nk (linear attention's φ(K)ᵀV) ~0.
- Crossover ("efficiency length"): the shortest length of a series from which a backend
  is faster than a reference at every longer length both measured (a reference that ran
  out of memory counts as beaten).
- Roofline: attainable FLOP/s = min(matmul peak, arithmetic intensity × copy bandwidth),
  with the intensity of the work the backend really does (dense FLOPs × kept fraction)
  over the bytes of q, k, v and out. Only for exact backends and those reporting a kept
  fraction: an approximation like linear attention does other work than the convention
  counts, so its dense-equivalent FLOP/s can exceed the roof. ``io_fraction`` =
  (those bytes / copy bandwidth) / latency: how close a call is to merely reading its
  inputs and writing its output.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from xbench.api.errors import UserError
from xbench.bench.grid import Shape, series_key


def fit_exponent(lengths: list[float], values: list[float]) -> float | None:
    """Slope of log(values) vs log(lengths); None with fewer than two distinct lengths."""
    pairs = [(n, y) for n, y in zip(lengths, values, strict=True) if n > 0 and y > 0]
    if len({n for n, _ in pairs}) < 2:
        return None
    x = np.log([n for n, _ in pairs])
    y = np.log([y for _, y in pairs])
    return float(np.polyfit(x, y, 1)[0])


def shape_of(point: dict[str, Any]) -> Shape:
    s = point["shape"]
    dims = (s["batch"], s["heads"], s["nq"], s["nk"], s["head_dim"])
    return Shape(*dims, s["dtype"], s["passes"], point.get("source", ""))


def median_ms(point: dict[str, Any]) -> float:
    """The median latency of an ok point."""
    return point["latency"]["median_ms"]


def memory_bytes(point: dict[str, Any]) -> int:
    """The peak memory of an ok point."""
    return point["memory"]["bytes"]


def series(points: list[dict[str, Any]]) -> dict[tuple, dict[str, list[dict]]]:
    """series key → backend → its points sorted by length (Nk)."""
    table: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for point in points:
        table[series_key(shape_of(point))][point["backend"]].append(point)
    for backends in table.values():
        for name in backends:
            backends[name].sort(key=lambda p: p["shape"]["nk"])
    return table


def describe_series(key: tuple) -> str:
    batch, heads, dim, dtype, passes, fixed = key
    return f"B={batch} H={heads} D={dim} {dtype} {passes} {fixed}"


def exponents(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fitted time and memory exponents per (series, backend) with ≥ 2 ok lengths."""
    rows = []
    for key, backends in series(points).items():
        for name, line in backends.items():
            ok = [p for p in line if p["status"] == "ok"]
            lengths = [p["shape"]["nk"] for p in ok]
            time = fit_exponent(lengths, [median_ms(p) for p in ok])
            memory = fit_exponent(lengths, [memory_bytes(p) for p in ok])
            if time is None:
                continue
            rows.append(
                {
                    "series": describe_series(key),
                    "backend": name,
                    "lengths": lengths,
                    "time_exponent": time,
                    "memory_exponent": memory,
                }
            )
    return rows


def crossover_length(
    candidate: list[dict[str, Any]], reference: list[dict[str, Any]]
) -> int | None:
    """Shortest length (Nk) from which ``candidate`` beats ``reference`` at every longer
    length both have points for; None when it never does in the measured range."""
    ref_by_length = {p["shape"]["nk"]: p for p in reference}
    verdicts = []
    for point in candidate:
        other = ref_by_length.get(point["shape"]["nk"])
        if point["status"] != "ok" or other is None or other["status"] in ("unsupported",):
            continue
        beats = other["status"] != "ok" or median_ms(point) < median_ms(other)
        verdicts.append((point["shape"]["nk"], beats))
    crossover = None
    for length, beats in sorted(verdicts):
        if not beats:
            crossover = None
        elif crossover is None:
            crossover = length
    return crossover


def crossovers(points: list[dict[str, Any]], references: list[str]) -> list[dict[str, Any]]:
    """For every series, backend and reference: the length from which the backend wins."""
    rows = []
    for key, backends in series(points).items():
        for reference in references:
            if reference not in backends:
                continue
            for name, line in backends.items():
                if name == reference:
                    continue
                rows.append(
                    {
                        "series": describe_series(key),
                        "backend": name,
                        "reference": reference,
                        "length": crossover_length(line, backends[reference]),
                    }
                )
    return rows


def add_roofline(points: list[dict[str, Any]], roofs: dict[str, float]) -> None:
    """Attach ``roofline_fraction`` and ``io_fraction`` to every ok point, in place."""
    peak, bandwidth = roofs.get("matmul_tflops"), roofs.get("copy_gbs")
    if not peak or not bandwidth:
        return
    for point in points:
        if point["status"] != "ok":
            continue
        point["io_floor_ms"] = point["io_bytes"] / (bandwidth * 1e9) * 1e3
        point["io_fraction"] = point["io_floor_ms"] / median_ms(point)
        kept = point.get("kept_fraction")
        if not point.get("exact", True) and kept is None:
            continue
        work = point["flops"]["count"] * (kept or 1.0)
        attainable = min(peak * 1e12, work / point["io_bytes"] * bandwidth * 1e9)
        point["roofline_fraction"] = work / (median_ms(point) * 1e-3) / attainable


def evaluate_checks(
    checks: list[dict[str, Any]],
    points: list[dict[str, Any]],
    references: list[dict[str, Any]],
    fitted: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Evaluate the preset's acceptance checks; each gives its figure and pass/fail."""
    return [_evaluate(check, points, references, fitted) for check in checks]


def _evaluate(check, points, references, fitted) -> dict[str, Any]:
    kind = check.get("kind")
    if kind not in CHECK_KINDS:
        raise UserError(f"bench.checks: kind {kind!r} is unknown; choose from {CHECK_KINDS}")
    result = {"check": check.get("name") or kind, "kind": kind, "value": None, "passed": False}
    where = check.get("where") or {}
    try:
        value = _CHECKS[kind](check, where, points, references, fitted)
    except LookupError as missing:
        result["detail"] = f"not measured: {missing}"
        return result
    low, high = check.get("min"), check.get("max")
    result.update(
        value=value,
        min=low,
        max=high,
        passed=(low is None or value >= low) and (high is None or value <= high),
    )
    return result


def _matches(shape: dict, where: dict) -> bool:
    return all(shape.get(key) == value for key, value in where.items())


def _point(points, backend: str, where: dict) -> dict:
    for point in points:
        if point["backend"] == backend and _matches(point["shape"], where):
            if point["status"] != "ok":
                raise LookupError(f"{backend} at {where}: {point['status']}")
            return point
    raise LookupError(f"{backend} at {where}")


def _speedup(check, where, points, references, fitted) -> float:
    return median_ms(_point(points, check["over"], where)) / median_ms(
        _point(points, check["backend"], where)
    )


def _skipped(check, where, points, references, fitted) -> float:
    kept = _point(points, check["backend"], where).get("kept_fraction")
    if kept is None:
        raise LookupError(f"{check['backend']} reports no kept_fraction")
    return 1.0 - kept


def _exponent(check, where, points, references, fitted) -> float:
    field = f"{check.get('quantity', 'memory')}_exponent"
    for row in fitted:
        mine = row["backend"] == check["backend"] and check.get("series", "") in row["series"]
        if mine and row[field] is not None:
            return row[field]
    raise LookupError(f"{field} of {check['backend']}")


def _vs_fastest_bare(check, where, points, references, fitted) -> float:
    bare = [
        r["median_ms"]
        for r in references
        if r["kind"] == "bare_sdpa" and r["status"] == "ok" and _matches(r["shape"], where)
    ]
    if not bare:
        raise LookupError("bare SDPA kernels (set bench.bare=true)")
    return min(bare) / median_ms(_point(points, check["backend"], where))


def _speedup_per_kept(check, where, points, references, fitted) -> float:
    kept = _point(points, check["backend"], where).get("kept_fraction")
    if not kept:
        raise LookupError(f"{check['backend']} reports no kept_fraction")
    return _speedup(check, where, points, references, fitted) * kept


def _io_floor(check, where, points, references, fitted) -> float:
    point = _point(points, check["backend"], where)
    if "io_floor_ms" not in point:
        raise LookupError("copy bandwidth (set bench.roofline=true)")
    return median_ms(point) / point["io_floor_ms"]


def _bare_agreement(check, where, points, references, fitted) -> float:
    for ref in references:
        mine = ref["kind"] == "bare_backend" and ref["reference"] == check["backend"]
        if mine and _matches(ref["shape"], where) and ref["status"] == "ok":
            harness = median_ms(_point(points, check["backend"], where))
            return abs(harness / ref["median_ms"] - 1.0)
    raise LookupError(f"bare timing of {check['backend']} (set bench.bare=true)")


_CHECKS = {
    "speedup": _speedup,
    "skipped_fraction": _skipped,
    "exponent": _exponent,
    "vs_fastest_bare": _vs_fastest_bare,
    "speedup_per_kept": _speedup_per_kept,
    "io_floor": _io_floor,
    "bare_agreement": _bare_agreement,
}
CHECK_KINDS = tuple(_CHECKS)

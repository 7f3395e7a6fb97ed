"""Typed results of measuring cross-attention: what the runner, ``xbench bench`` and the
run record share. Each type turns into plain JSON with ``to_dict`` and back with
``from_dict`` (:class:`~xbench.jsonable.Jsonable`), so records stay readable without
xbench and old files can be migrated.

A measurement that could not be taken is a :class:`Measurement` with a status other than
``ok`` and a reason; it never raises into the run that asked for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xbench.jsonable import Jsonable

MEASUREMENT_STATUSES = ("ok", "oom", "unsupported", "failed")
#: AttentionShape.passes: forward only; forward + input gradients (a training step); or one
#: decode step, ``attend`` of Nq query rows per sequence against a memory prepared before
#: timing (``prepare`` once per source, its cost reported apart).
PASSES = ("fwd", "fwd+bwd", "decode")
FLOPS_CONVENTION = "FlashAttention: forward = 4*B*H*Nq*Nk*D, forward+backward = 3.5x forward"


@dataclass(frozen=True)
class Latency(Jsonable):
    """Milliseconds per call: median and interquartile range over ``count`` timed calls;
    ``cold_ms`` is the first call alone (kernel choice, autotuning), when it was timed.
    ``noisy``: the spread dwarfs the median (IQR above it), so the median is no figure to
    compare; views mark it (:func:`xbench.measure.clock.summarize` sets it)."""

    median_ms: float
    iqr_ms: float
    count: int
    cold_ms: float | None = None
    noisy: bool = False

    @property
    def text(self) -> str:
        """``0.141 ± 0.012`` (median ± IQR, ms), ``(noisy)`` appended when it is."""
        return f"{self.median_ms:.3f} ± {self.iqr_ms:.3f}" + (" (noisy)" if self.noisy else "")


@dataclass(frozen=True)
class Memory(Jsonable):
    """Peak bytes of a measured region and how they were counted (a key of
    :data:`xbench.measure.memory.MEMORY_METHODS`, or free text in migrated records)."""

    bytes: int
    method: str


@dataclass(frozen=True)
class Flops(Jsonable):
    """Floating-point operations of one call, with the convention that counted them."""

    count: int
    convention: str = FLOPS_CONVENTION

    def tflops(self, latency: Latency) -> float:
        """Achieved TFLOP/s at ``latency``'s median."""
        return self.count / (latency.median_ms * 1e-3) / 1e12


@dataclass(frozen=True)
class AttentionSizes(Jsonable):
    """The sizes of one cross-attention call: ``q (B, H, Nq, D)``, ``k, v (B, H, Nk, D)``
    in ``dtype``; what a grid of shapes varies before a device is chosen."""

    batch: int
    heads: int
    nq: int
    nk: int
    head_dim: int
    dtype: str


@dataclass(frozen=True)
class AttentionShape(AttentionSizes):
    """The inputs of one measured call: its sizes, the device, the passes timed and the mask.

    ``padded_fraction`` is the share of keys the padding mask hides (0.0: a mask with every
    key real; None: no mask passed). Above 0 the real lengths are ragged across the batch,
    as in a padded batch of real sequences (see :func:`xbench.measure.inputs.padding_mask`);
    a measurement given a real batch's mask records that mask's padded share here.
    """

    device: str
    passes: str = "fwd"
    padded_fraction: float | None = 0.0


@dataclass
class Measurement(Jsonable):
    """One backend at one shape: the figures when ``status == "ok"``, else the reason.

    ``input_sets`` is how many input sets the timed calls cycled through; ``detail`` is the
    tail of the traceback of a ``failed`` measurement (where in the backend it broke).
    ``prepare`` (``decode`` only) is the one-off cost of ``prepare`` per source, timed apart
    from the steps; ``bytes_moved`` is the K+V bytes one call must read, the roof of a
    memory-bound decode step (:attr:`bytes_per_second`).
    """

    shape: AttentionShape
    status: str = "ok"
    reason: str | None = None
    latency: Latency | None = None
    memory: Memory | None = None
    flops: Flops | None = None
    describe: dict[str, Any] = field(default_factory=dict)
    input_sets: int | None = None
    detail: str | None = None
    prepare: Latency | None = None
    bytes_moved: int | None = None

    def __post_init__(self) -> None:
        if self.status not in MEASUREMENT_STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {MEASUREMENT_STATUSES}")

    @property
    def why_not_measured(self) -> str | None:
        """``oom: <reason>`` (status and reason, as views show it), None when it is ok."""
        if self.status == "ok":
            return None
        return f"{self.status}: {self.reason}" if self.reason else self.status

    @property
    def tflops(self) -> float | None:
        if self.flops is None or self.latency is None:
            return None
        return self.flops.tflops(self.latency)

    @property
    def bytes_per_second(self) -> float | None:
        """K+V bytes read per second at the median latency (a decode step's roof)."""
        if self.bytes_moved is None or self.latency is None:
            return None
        return self.bytes_moved / max(self.latency.median_ms * 1e-3, 1e-12)

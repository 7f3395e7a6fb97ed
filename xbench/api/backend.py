"""The attention-backend contract.

Shapes: ``q (B, H, Nq, D)``, ``k (B, H, Nk, D)``, ``v (B, H, Nk, Dv)`` → ``out (B, H, Nq, Dv)``.
``key_padding_mask (B, Nk)`` is boolean with True for a real key. Padded keys get zero
weight, and a query whose keys are all padded returns zeros, never NaN.

**One instance per decoder layer.** The model calls ``BackendSpec.build(options)`` once for
each decoder layer, so every layer's cross-attention has its own backend object: a backend
may keep per-layer state (caches, learned parameters, buffers, statistics) in ``self``.
``build`` must therefore return a new object on each call. The runner builds one more
instance to ask ``supports()`` before training; what it measures and records
(``describe()``) is the last decoder layer's instance, the one the heatmaps draw.

**Static memory.** Cross-attention's keys and values come from the encoder and stay fixed
while the decoder writes its output. The model therefore calls :meth:`AttentionBackend.prepare`
once per source and layer, turning ``k, v`` and the padding mask into the backend's own
:class:`PreparedMemory`, and then :meth:`AttentionBackend.attend` for every query block:
the whole target at once in a teacher-forced pass, one row per sequence at each step of
cached decoding. The defaults keep ``k, v, mask`` as they are and call ``forward``, so a
backend that only implements ``forward`` works unchanged; one that overrides ``prepare``
(folding φ(K)ᵀV once, building a block structure, packing K/V) must override ``attend``.

**Query positions.** ``attend`` also gets the :class:`QueryPositions` of its queries: which
decoder columns they are and how many columns the sequence spans. A position-dependent
pattern (a sparse layout that aligns query ``i`` to key block ≈ ``i·Nk/Nq``) aligns with
those instead of ``q``'s row count, so a token sees the same keys whether it arrives with
the whole target (teacher forcing) or alone (a decode step). ``forward`` is the special
case ``QueryPositions(start=0, total=Nq)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

#: Keys of :meth:`AttentionBackend.describe` that xbench itself reads, with the types their
#: values must have (``None`` = not known yet, e.g. before the first forward):
#:
#: - ``kernel`` (str): the kernel or algorithm that ran last, e.g. ``"cudnn"`` or
#:   ``"block-sparse"``: what a reader of the run record or bench output looks for first.
#: - ``kept_fraction`` (float in [0, 1]): the fraction of the Nq×Nk (query, key) score pairs
#:   the last forward computed (sparse backends). ``xbench bench`` scales the FLOPs by it
#:   for roofline figures (an exact backend counts as 1; an approximation without it gets
#:   no roofline figure) and its ``skipped`` / ``speedup_per_kept`` checks need it.
#: - ``implementation`` (str): which of the backend's code paths ran last, when it has
#:   several (e.g. ``"flex_attention"`` or ``"blocks"``).
#:
#: Any other key is free-form and stored as is; the whole dict must be JSON.
RESERVED_DESCRIBE_KEYS: Mapping[str, type | tuple[type, ...]] = {
    "kernel": str,
    "kept_fraction": (float, int),
    "implementation": str,
}


@dataclass(frozen=True)
class QueryPositions:
    """Where a call's queries sit in the decoder's token sequence.

    ``q``'s ``Nq`` rows are the decoder columns ``start, start + 1, …, start + Nq − 1`` of a
    sequence of ``total`` columns. Columns are shared by the batch: a left-padded prompt's
    padding counts as columns, and ``total`` is the prompt width plus the model's decoding
    budget, the same number in the teacher-forced pass and at every decode step of one
    batch. An alignment that depends on positions must depend on these two numbers only.
    """

    start: int
    total: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.total < 1 or self.start >= self.total:
            raise ValueError(f"QueryPositions(start={self.start}, total={self.total}) is empty")

    @classmethod
    def whole(cls, nq: int) -> QueryPositions:
        """The positions ``forward`` implies: every column, the first first."""
        return cls(start=0, total=nq)

    def check(self, nq: int) -> None:
        """Raise when ``nq`` queries from ``start`` run past ``total``."""
        if self.start + nq > self.total:
            raise ValueError(
                f"{nq} queries from column {self.start} run past the {self.total} columns"
            )


@dataclass(frozen=True)
class PreparedMemory:
    """One layer's encoder memory as a backend keeps it for every query of one source.

    The default keeps ``k (B, H, Nk, D)``, ``v (B, H, Nk, Dv)``, the padding mask and the
    softmax temperature; a backend subclasses it (a frozen dataclass) to add its own state,
    e.g. linear attention's ``Σ φ(k) vᵀ``. ``k`` and ``v`` stay available to every backend:
    heatmaps and the conformance kit read them.
    """

    k: Tensor
    v: Tensor
    key_padding_mask: Tensor | None = None
    scale: float | None = None

    @property
    def batch(self) -> int:
        return self.k.shape[0]

    @property
    def keys(self) -> int:
        """Nk, the stored key positions (padding included)."""
        return self.k.shape[2]

    def select(self, index: Tensor) -> PreparedMemory:
        """The memory of batch items ``index`` (beam search, or dropping finished items).

        The default slices every tensor field along the batch dimension; a subclass whose
        state is not batch-first must override it.
        """
        changes = {
            name: getattr(self, name).index_select(0, index)
            for name in self.__dataclass_fields__
            if isinstance(getattr(self, name), Tensor)
        }
        return replace(self, **changes)


class AttentionBackend(nn.Module):
    """Base class for cross-attention backends; subclasses implement :meth:`forward`.

    Override :meth:`attention_weights` too whenever ``forward`` applies anything other than
    exact masked softmax (a temperature, a mask, a kernel): heatmaps draw those weights,
    and the conformance kit checks an approximation's ``forward`` against them.
    """

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> Tensor:
        """``out (B, H, Nq, Dv)``; ``scale`` is the softmax temperature (default 1/sqrt(D))."""
        raise NotImplementedError

    def supports(
        self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None = None
    ) -> str | None:
        """Why this backend cannot run these inputs, or None when it can. Never raises."""
        return None

    def attention_weights(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> Tensor:
        """The (B, H, Nq, Nk) weights this backend effectively applies (for heatmaps).

        The default is exact masked softmax: right for every exact backend, wrong for any
        backend whose ``forward`` computes something else, which must override it.
        """
        return masked_softmax_weights(q, k, key_padding_mask, scale)

    def describe(self) -> dict[str, Any]:
        """What actually ran; stored in the run record. JSON only. The keys in
        :data:`RESERVED_DESCRIBE_KEYS` have a fixed meaning and type; others are free."""
        return {}

    def prepare(
        self,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> PreparedMemory:
        """This layer's state for one source, built once and read by every :meth:`attend`.

        Called inside the model's graph: in training its result must stay differentiable
        in ``k`` and ``v``. The default keeps the inputs as they are.
        """
        return PreparedMemory(k, v, key_padding_mask, scale)

    def attend(
        self, q: Tensor, memory: PreparedMemory, positions: QueryPositions | None = None
    ) -> Tensor:
        """``out (B, H, Nq, Dv)`` of queries at ``positions`` (default: the whole sequence)
        against a prepared memory. Equals ``forward(q, k, v, mask, scale)`` for
        ``positions=None``; the default calls it and ignores positions."""
        return self(q, memory.k, memory.v, memory.key_padding_mask, memory.scale)

    def attend_weights(
        self, q: Tensor, memory: PreparedMemory, positions: QueryPositions | None = None
    ) -> Tensor:
        """The (B, H, Nq, Nk) weights :meth:`attend` applies (heatmaps of the model's own
        pass); the default is :meth:`attention_weights`, right for position-free backends."""
        return self.attention_weights(q, memory.k, memory.v, memory.key_padding_mask, memory.scale)


def describe_problem(described: Any) -> str | None:
    """Why a ``describe()`` result breaks the contract (not a dict, or a reserved key with a
    value of the wrong type or range), or None when it keeps it. JSON is checked apart."""
    if not isinstance(described, dict):
        return f"describe() must return a dict, got {type(described).__name__}"
    for key, kind in RESERVED_DESCRIBE_KEYS.items():
        value = described.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, kind):
            expected = " or ".join(
                t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,))
            )
            return f"describe()[{key!r}] must be {expected} or None, got {value!r}"
    kept = described.get("kept_fraction")
    if kept is not None and not 0.0 <= kept <= 1.0:
        return f"describe()['kept_fraction'] must lie in [0, 1], got {kept!r}"
    return None


@dataclass(frozen=True, kw_only=True)
class BackendSpec:
    """What a plugin registers: a named factory of :class:`AttentionBackend`.

    Keyword arguments only, so fields can be added without breaking a plugin.

    - ``name``: the value of ``backend=NAME``; lower-case letters, digits and ``_``.
    - ``build``: ``build(options) -> AttentionBackend``, called with a validated instance of
      ``options``, once per decoder layer (see the module doc): return a new object each
      call. Built-ins pass a module-level function ``build_<name>(options)``.
    - ``options``: a dataclass whose fields all have defaults (declare them with
      :func:`xbench.option`); it becomes the config node ``backend=NAME``, so
      ``backend.<field>=value`` works without YAML. No field may be called ``name``.
    - ``exact``: True when ``forward`` is softmax attention up to floating-point error. The
      kit then checks it against float64 masked softmax; an approximation (False) is
      checked only against its own ``attention_weights``.
    - ``description``: one line for ``xbench plugins`` and the leaderboard.
    """

    name: str
    build: Callable[[Any], AttentionBackend]
    options: type
    exact: bool
    description: str = ""


def default_scale(q: Tensor, scale: float | None) -> float:
    """The softmax temperature: ``1/sqrt(D)`` unless given."""
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale


def masked_softmax_weights(
    q: Tensor, k: Tensor, key_padding_mask: Tensor | None, scale: float | None
) -> Tensor:
    """softmax(QKᵀ·scale) over the real keys; rows without a real key are all zeros."""
    scores = torch.matmul(q, k.transpose(-2, -1)) * default_scale(q, scale)
    if key_padding_mask is None:
        return torch.softmax(scores, dim=-1)
    keep = key_padding_mask[:, None, None, :]
    scores = scores.masked_fill(~keep, float("-inf"))
    # A row with no real key would be softmax over all -inf (NaN); give it zeros instead.
    empty = ~key_padding_mask.any(dim=-1)
    scores = scores.masked_fill(empty[:, None, None, None], 0.0)
    return torch.softmax(scores, dim=-1).masked_fill(~keep, 0.0)


def zero_empty_rows(out: Tensor, key_padding_mask: Tensor | None) -> Tensor:
    """Zero the outputs of batch items whose keys are all padded (kernels may give NaN)."""
    if key_padding_mask is None:
        return out
    empty = ~key_padding_mask.any(dim=-1)
    return out.masked_fill(empty[:, None, None, None], 0.0)

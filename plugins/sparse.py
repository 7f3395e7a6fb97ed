"""``sparse``: block-sparse cross-attention — softmax restricted to the kept key blocks.

Each query block reads only the key blocks its layout keeps (see
:mod:`xbench_plugins.sparse_patterns`), so cost and memory grow with the kept pairs, not
with Nq·Nk. The layout is built for the decoder's ``total`` columns and ``attend`` computes
the rows of its queries' columns (:class:`xbench.api.backend.QueryPositions`): a decode step
of one row reads only its query block's kept keys, the same keys the teacher-forced pass
gives that token. It is an approximation (``exact=False``), checked against its own definition:
softmax over the real keys of the kept blocks; a query with no such key returns zeros.

Two implementations compute the same thing:

- ``blocks`` (any device): fused ``scaled_dot_product_attention`` calls on just the kept
  keys: views of k and v when a query block's kept blocks are contiguous (every ``local``
  row; evenly stepping rows share one call on strided views), gathered keys otherwise.
  Memory stays bounded by the output plus one group's keys; no Nq×Nk matrix is built.
- ``flex_attention`` (CUDA): ``torch.compile``-d FlexAttention with the layout as a cached
  ``BlockMask``. Should compilation or the kernel fail for an input, that input runs on
  ``blocks`` and ``describe()`` says so. For inference inputs both are timed once per
  input signature and the faster one is kept (``describe()["route_ms"]``).
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import xbench
from xbench.api.backend import (
    AttentionBackend,
    BackendSpec,
    PreparedMemory,
    QueryPositions,
    default_scale,
)
from xbench.api.options import option
from xbench_plugins.sparse_patterns import (
    PATTERNS,
    block_count,
    block_layout,
    element_mask,
    query_rows,
)

# Timed calls per implementation when FlexAttention is raced against the blocks path.
RACE_REPEATS = 5
# FlexAttention's BlockMask tiles must be multiples of its kernel tiles; 128 always is.
FLEX_TILE = 128
# Each new shape is a new compiled graph; a long sweep must not hit dynamo's limit and
# silently drop to eager (which materialises the full score matrix).
DYNAMO_RECOMPILE_LIMIT = 1024


@dataclass
class SparseOptions:
    pattern: str = option("local", help="block layout", choices=PATTERNS)
    block_size: int = option(64, help="queries and keys per block", min=1)
    window: int = option(1, help="key blocks kept on each side of the aligned key block", min=0)
    stride: int = option(4, help="strided: every stride-th key block is also kept", min=1)
    global_blocks: int = option(
        1, help="bigbird: the first N key blocks, kept for every query block", min=0
    )
    random_blocks: int = option(1, help="bigbird: random key blocks per query block", min=0)
    seed: int = option(0, help="bigbird: seed of the random blocks")


#: (total, Nk, start, Nq): the layout's lengths and which of its query columns a call computes.
Span = tuple[int, int, int, int]


class SparseAttention(AttentionBackend):
    """Block-sparse softmax attention; layouts, work lists and FlexAttention masks cached per
    span of query columns."""

    #: Device types on which FlexAttention is tried first (its kernels are Triton's).
    flex_devices: tuple[str, ...] = ("cuda",)
    #: Device types on which a working FlexAttention is raced against ``blocks`` (inference
    #: signatures only; training keeps FlexAttention, whose backward is fused too).
    race_devices: tuple[str, ...] = ("cuda",)

    def __init__(self, options: SparseOptions) -> None:
        super().__init__()
        self.options = options
        self._layouts: dict[tuple, Tensor] = {}
        self._kept_fractions: dict[Span, float] = {}
        self._block_masks: dict[tuple, Any] = {}
        self._groups: dict[tuple, list[RowGroup]] = {}
        self._flex_routes: dict[tuple, str] = {}  # input signature -> implementation
        self.last_implementation: str | None = None
        self.last_kept_fraction: float | None = None
        self.compile_seconds = 0.0
        self.tune_seconds = 0.0
        self.route_timings_ms: dict[str, float] = {}
        self.flex_error: str | None = None

    def layout(self, nq: int, nk: int, device: torch.device | str = "cpu") -> Tensor:
        """The bool (nQb, nKb) block layout of ``nq`` query columns (a sequence's ``total``)
        and ``nk`` keys, cached per (Nq, Nk, device)."""
        device = torch.device(device)
        key = (nq, nk, device)
        if key not in self._layouts:
            o = self.options
            layout = block_layout(
                o.pattern,
                block_count(nq, o.block_size),
                block_count(nk, o.block_size),
                window=o.window,
                stride=o.stride,
                global_blocks=o.global_blocks,
                random_blocks=o.random_blocks,
                seed=o.seed,
            )
            self._layouts[key] = layout.to(device)
        return self._layouts[key]

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> Tensor:
        return self.attend(q, PreparedMemory(k, v, key_padding_mask, scale))

    def attend(
        self, q: Tensor, memory: PreparedMemory, positions: QueryPositions | None = None
    ) -> Tensor:
        """The rows of ``q``'s columns in the layout of ``positions.total`` query columns."""
        span = _span(q, memory, positions)
        k, v, mask = memory.k, memory.v, memory.key_padding_mask
        scale = default_scale(q, memory.scale)
        self.last_kept_fraction = self._kept_fraction(span)
        if q.device.type in self.flex_devices:
            out = self._forward_flex(q, k, v, span, mask, scale)
            if out is not None:
                self.last_implementation = "flex_attention"
                return out
        self.last_implementation = "blocks"
        return block_sparse_attention(q, k, v, self._row_groups(span, q.device), mask, scale)

    def supports(self, q, k, v, key_padding_mask=None) -> str | None:
        try:
            return _input_problem(q, k, v, key_padding_mask)
        except Exception as error:  # supports() must answer, never raise
            return f"cannot inspect the input: {error}"

    def attention_weights(self, q, k, v, key_padding_mask=None, scale=None) -> Tensor:
        """Dense (B, H, Nq, Nk) weights: softmax over the real keys of the kept blocks."""
        return self.attend_weights(q, PreparedMemory(k, v, key_padding_mask, scale))

    def attend_weights(
        self, q: Tensor, memory: PreparedMemory, positions: QueryPositions | None = None
    ) -> Tensor:
        """Dense weights of :meth:`attend`: the layout rows of ``q``'s columns, then padding."""
        total, nk, start, nq = _span(q, memory, positions)
        layout = self.layout(total, nk, q.device)
        keep = element_mask(layout, nq, nk, self.options.block_size, start)[None, None]
        if memory.key_padding_mask is not None:
            keep = keep & memory.key_padding_mask[:, None, None, :]
        work = _compute_dtype(q.dtype)
        scores = torch.matmul(q.to(work), memory.k.to(work).transpose(-2, -1))
        return _masked_softmax(scores * default_scale(q, memory.scale), keep).to(q.dtype)

    def describe(self) -> dict:
        info = {
            "kernel": "block-sparse",
            "implementation": self.last_implementation,
            "pattern": self.options.pattern,
            "block_size": self.options.block_size,
            "kept_fraction": self.last_kept_fraction,
            "compile_seconds": round(self.compile_seconds, 4),
        }
        if self.route_timings_ms:
            info["route_ms"] = {k: round(v, 4) for k, v in self.route_timings_ms.items()}
            info["tune_seconds"] = round(self.tune_seconds, 4)
        if self.flex_error:
            info["flex_error"] = self.flex_error
        return info

    def _kept_fraction(self, span: Span) -> float:
        """The share of key blocks the rows of ``span`` keep (from the CPU layout: no sync)."""
        if span not in self._kept_fractions:
            total, nk, start, nq = span
            rows = query_rows(self.layout(total, nk), self.options.block_size, start, nq)
            self._kept_fractions[span] = rows.float().mean().item()
        return self._kept_fractions[span]

    def _forward_flex(self, q, k, v, span, key_padding_mask, scale) -> Tensor | None:
        """FlexAttention's output, or None when it cannot compile or run this input."""
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
        signature = (q.shape, k.shape, v.shape, q.dtype, key_padding_mask is not None, needs_grad)
        route = self._flex_routes.get(signature)
        if route == "blocks":
            return None
        start = time.perf_counter()
        try:
            block_mask = self._block_mask(span, q.device)
            attend = compiled_flex_attention()
            out = flex_block_attention(attend, q, k, v, block_mask, key_padding_mask, scale)
            if route is None and q.is_cuda:
                torch.cuda.synchronize(q.device)
        except Exception as error:  # compile failures come in many types; any of them → blocks
            self.flex_error = f"{type(error).__name__}: {error}"[:500]
            self._flex_routes[signature] = "blocks"
            return None
        if route is None:  # first call of this signature: the time is the compilation's
            self.compile_seconds += time.perf_counter() - start
            route = "flex_attention"
            if not needs_grad and q.device.type in self.race_devices:
                route = self._faster_route(q, k, v, span, block_mask, key_padding_mask, scale)
            self._flex_routes[signature] = route
            if route == "blocks":
                return None
        return out

    def _faster_route(self, q, k, v, span, block_mask, key_padding_mask, scale) -> str:
        """Time FlexAttention against the ``blocks`` path (fused SDPA on views) once per input
        signature and keep the faster: on banded layouts the dense kernels on views can win."""
        groups = self._row_groups(span, q.device)
        attend = compiled_flex_attention()
        calls = {
            "flex_attention": lambda: flex_block_attention(
                attend, q, k, v, block_mask, key_padding_mask, scale
            ),
            "blocks": lambda: block_sparse_attention(q, k, v, groups, key_padding_mask, scale),
        }
        start = time.perf_counter()
        route, timings = xbench.pick_fastest(calls, q.device, repeats=RACE_REPEATS)
        self.tune_seconds += time.perf_counter() - start
        self.route_timings_ms = timings
        return route

    def _row_groups(self, span: Span, device: torch.device) -> list[RowGroup]:
        key = (span, device)
        if key not in self._groups:
            total, nk, start, nq = span
            layout = self.layout(total, nk, device)
            self._groups[key] = row_groups(layout, self.options.block_size, nq, nk, start)
        return self._groups[key]

    def _block_mask(self, span: Span, device: torch.device) -> Any:
        key = (span, device)
        if key not in self._block_masks:
            total, nk, start, nq = span
            rows = query_rows(self.layout(total, nk, device), self.options.block_size, start, nq)
            self._block_masks[key] = layout_block_mask(rows, self.options.block_size, nk)
        return self._block_masks[key]


def _span(q: Tensor, memory: PreparedMemory, positions: QueryPositions | None) -> Span:
    """(total, Nk, start, Nq) of a call; no positions means the whole sequence (``forward``)."""
    nq = q.shape[2]
    positions = QueryPositions.whole(nq) if positions is None else positions
    positions.check(nq)
    return positions.total, memory.keys, positions.start, nq


@dataclass(frozen=True)
class RowGroup:
    """``count`` consecutive chunks of ``rows`` queries from ``start``. Chunk j reads the keys
    ``key_start + j·step`` … ``+ width`` (views of k and v), or, for a lone chunk whose kept
    blocks are not contiguous, the gathered key positions ``index``."""

    start: int
    rows: int
    count: int = 1
    key_start: int = 0
    width: int = 0
    step: int = 0
    index: Tensor | None = None


def row_groups(layout: Tensor, block_size: int, nq: int, nk: int, start: int = 0) -> list[RowGroup]:
    """The work list of the ``blocks`` path for the ``nq`` query columns from ``start``,
    built once per span; group rows count from the call's first query.

    Only the query blocks of those columns are read, so one decode row costs one block's
    kept keys. Query blocks that keep the same key blocks form one chunk; chunks of equal
    size whose contiguous key ranges have equal widths and advance by a constant step (the
    body of every ``local`` layout) form one run, computed in a single call on strided views.
    """
    chunks: list[RowGroup] = []
    first_block = start // block_size
    rows = layout[first_block : (start + nq - 1) // block_size + 1].cpu().tolist()
    for offset, row in enumerate(rows):
        block = first_block + offset
        stop = min((block + 1) * block_size, start + nq) - start
        if chunks and row == rows[offset - 1]:
            last = chunks.pop()
            chunks.append(dataclasses.replace(last, rows=stop - last.start))
            continue
        kept = [j for j, keep in enumerate(row) if keep]
        begin, first = max(block * block_size, start) - start, kept[0] * block_size
        if kept[-1] - kept[0] + 1 == len(kept):
            width = min((kept[-1] + 1) * block_size, nk) - first
            chunks.append(RowGroup(begin, stop - begin, key_start=first, width=width))
        else:
            index = torch.arange(block_size)[None, :] + torch.tensor(kept)[:, None] * block_size
            index = index.flatten()
            chunks.append(RowGroup(begin, stop - begin, index=index[index < nk].to(layout.device)))
    groups: list[RowGroup] = []
    for chunk in chunks:
        if groups and _extends(groups[-1], chunk):
            last = groups.pop()
            step = chunk.key_start - last.key_start if last.count == 1 else last.step
            chunk = dataclasses.replace(last, count=last.count + 1, step=step)
        groups.append(chunk)
    return groups


def _extends(run: RowGroup, chunk: RowGroup) -> bool:
    """Whether ``chunk`` continues ``run`` with the same sizes and the same key step."""
    if run.index is not None or chunk.index is not None:
        return False
    step = chunk.key_start - (run.key_start + (run.count - 1) * run.step)
    return (
        chunk.rows == run.rows
        and chunk.width == run.width
        and step > 0
        and (run.count == 1 or step == run.step)
    )


def block_sparse_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    groups: list[RowGroup],
    key_padding_mask: Tensor | None,
    scale: float,
) -> Tensor:
    """softmax over the kept key blocks, one fused SDPA call per row group (the ``blocks`` path).

    Each call sees only its group's queries and kept keys, so time and memory grow with the
    kept pairs and the Nq×Nk matrix never exists. Half-precision inputs accumulate in float32
    inside the fused kernel.
    """
    real = None if key_padding_mask is None else key_padding_mask.to(torch.bool)
    return torch.cat([_group_attention(q, k, v, g, real, scale) for g in groups], dim=2)


def _group_attention(
    q: Tensor, k: Tensor, v: Tensor, group: RowGroup, real: Tensor | None, scale: float
) -> Tensor:
    """(B, H, count·rows, Dv) outputs of one group."""
    queries = q[:, :, group.start : group.start + group.count * group.rows]
    if group.index is not None:
        keys, values = k.index_select(2, group.index), v.index_select(2, group.index)
        return _attend(queries, keys, values, None if real is None else real[:, group.index], scale)
    if group.count == 1:
        span = slice(group.key_start, group.key_start + group.width)
        return _attend(queries, k[:, :, span], v[:, :, span], _part(real, span), scale)
    # A run: per batch item, its chunks become the leading dimension of strided views.
    span = slice(group.key_start, group.key_start + (group.count - 1) * group.step + group.width)
    outputs = []
    for b in range(q.shape[0]):
        chunks = queries[b].unflatten(1, (group.count, group.rows)).transpose(0, 1)
        keys = k[b, :, span].unfold(1, group.width, group.step).permute(1, 0, 3, 2)
        values = v[b, :, span].unfold(1, group.width, group.step).permute(1, 0, 3, 2)
        windows = None if real is None else real[b, span].unfold(0, group.width, group.step)
        out = _attend(chunks, keys, values, windows, scale)  # (count, H, rows, Dv)
        outputs.append(out.transpose(0, 1).flatten(1, 2))
    return torch.stack(outputs)


def _part(real: Tensor | None, span: slice) -> Tensor | None:
    return None if real is None else real[:, span]


def _attend(queries: Tensor, keys: Tensor, values: Tensor, real: Tensor | None, scale: float):
    """Fused SDPA over (N, H, L, D); ``real`` (N, S) marks real keys. An item with none runs
    unmasked and is zeroed after (a fully masked row would be NaN)."""
    if real is None:
        return F.scaled_dot_product_attention(queries, keys, values, scale=scale)
    empty = ~real.any(dim=-1)
    mask = (real | empty[:, None])[:, None, None, :]
    out = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask, scale=scale)
    return out.masked_fill(empty[:, None, None, None], 0.0)


def layout_block_mask(rows: Tensor, block_size: int, nk: int) -> Any:
    """A FlexAttention ``BlockMask`` for a call's queries, whose layout rows are ``rows``
    (Nq, nKb) (see :func:`query_rows`): query ``q_idx`` of the call reads key ``kv_idx`` iff
    ``rows[q_idx, kv_idx // block_size]``, so the column offset is already applied and a
    decode step's mask has the same shapes at every step.

    The mask_mod is exact at the element level; the BlockMask's tiles (multiples of the
    kernel's tiles) only decide which tiles are skipped outright.
    """
    from torch.nn.attention.flex_attention import create_block_mask

    def in_layout(b, h, q_idx, kv_idx):
        return rows[q_idx, kv_idx // block_size]

    tile = block_size if block_size % FLEX_TILE == 0 else FLEX_TILE
    nq = rows.shape[0]
    return create_block_mask(in_layout, None, None, nq, nk, device=rows.device, BLOCK_SIZE=tile)


def flex_block_attention(
    attend: Callable[..., Tensor],
    q: Tensor,
    k: Tensor,
    v: Tensor,
    block_mask: Any,
    key_padding_mask: Tensor | None,
    scale: float,
) -> Tensor:
    """Run ``attend`` (FlexAttention, compiled or not) with the layout and the padding.

    The padding changes every batch while the BlockMask is cached per shape, so padded keys
    are removed by a score_mod (-inf) instead of being baked into the BlockMask. FlexAttention
    returns zeros (and zero gradients) for a query whose scores are all -inf.
    """
    score_mod = None
    if key_padding_mask is not None:
        real = key_padding_mask.to(torch.bool)

        def score_mod(score, b, h, q_idx, kv_idx):
            return torch.where(real[b, kv_idx], score, float("-inf"))

    return attend(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale)


@functools.cache
def compiled_flex_attention() -> Callable[..., Tensor]:
    """``torch.compile(flex_attention)``, built once per process with room for many shapes."""
    import torch._dynamo
    from torch.nn.attention.flex_attention import flex_attention

    config = torch._dynamo.config
    with warnings.catch_warnings():  # some of these names are deprecated aliases of others
        warnings.simplefilter("ignore")
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(config, name):
                setattr(config, name, max(getattr(config, name), DYNAMO_RECOMPILE_LIMIT))
        for name in ("accumulated_recompile_limit", "accumulated_cache_size_limit"):
            if hasattr(config, name):
                setattr(config, name, max(getattr(config, name), 4 * DYNAMO_RECOMPILE_LIMIT))
    return torch.compile(flex_attention, dynamic=False)


def _masked_softmax(scores: Tensor, keep: Tensor) -> Tensor:
    """Softmax over the ``keep`` entries of each row; a row with none is all zeros."""
    has_key = keep.any(dim=-1, keepdim=True)
    scores = scores.masked_fill(~keep, float("-inf")).masked_fill(~has_key, 0.0)
    return torch.softmax(scores, dim=-1).masked_fill(~keep, 0.0)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Scores and softmax run in float32 for half-precision inputs."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _input_problem(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None) -> str | None:
    if not (q.dim() == k.dim() == v.dim() == 4):
        return "q, k and v must be 4-D (B, H, N, D)"
    if not all(t.is_floating_point() for t in (q, k, v)):
        return "q, k and v must be floating point"
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3] or q.shape[-1] != k.shape[-1]:
        return f"shapes do not match: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
    if q.shape[2] == 0 or k.shape[2] == 0:
        return "needs at least one query and one key"
    if key_padding_mask is not None and (
        key_padding_mask.dtype != torch.bool or key_padding_mask.shape != (k.shape[0], k.shape[2])
    ):
        return f"key_padding_mask must be bool (B, Nk) = {(k.shape[0], k.shape[2])}"
    return None


def build_sparse(options: SparseOptions) -> SparseAttention:
    return SparseAttention(options)


@xbench.hookimpl
def xbench_register_backends(register):
    register(
        BackendSpec(
            name="sparse",
            build=build_sparse,
            options=SparseOptions,
            exact=False,
            description="Block-sparse softmax attention (local / strided / bigbird layouts); "
            "FlexAttention on CUDA, block gather elsewhere.",
        )
    )

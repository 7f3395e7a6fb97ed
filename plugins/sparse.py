"""``sparse``: block-sparse cross-attention — softmax restricted to the kept key blocks.

Each query block reads only the key blocks its layout keeps (see
:mod:`xbench_plugins.sparse_patterns`), so cost and memory grow with the kept pairs, not
with Nq·Nk. It is an approximation (``exact=False``), checked against its own definition:
softmax over the real keys of the kept blocks; a query with no such key returns zeros.

Two implementations compute the same thing:

- ``blocks`` (any device): gathers each query block's kept key blocks, a chunk of query
  blocks at a time so that memory stays bounded, and never builds the Nq×Nk matrix.
- ``flex_attention`` (CUDA): ``torch.compile``-d FlexAttention with the layout as a cached
  ``BlockMask``. Should compilation or the kernel fail for an input, that input runs on
  ``blocks`` and ``describe()`` says so.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

import xbench
from xbench.backend import AttentionBackend, BackendSpec, default_scale
from xbench.options import option
from xbench_plugins.sparse_patterns import PATTERNS, block_count, block_layout, element_mask

# Elements of one chunk's score tensor (B·H·chunk·bs·kept·bs): 4M floats = 16 MiB in fp32.
CHUNK_ELEMENTS = 1 << 22
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


class SparseAttention(AttentionBackend):
    """Block-sparse softmax attention; layouts and FlexAttention masks cached per shape."""

    #: Device types on which FlexAttention is tried first (its kernels are Triton's).
    flex_devices: tuple[str, ...] = ("cuda",)

    def __init__(self, options: SparseOptions) -> None:
        super().__init__()
        self.options = options
        self._layouts: dict[tuple, Tensor] = {}
        self._kept_fractions: dict[tuple[int, int], float] = {}
        self._block_masks: dict[tuple, Any] = {}
        self._flex_routes: dict[tuple, str] = {}  # input signature -> implementation
        self.last_implementation: str | None = None
        self.last_kept_fraction: float | None = None
        self.compile_seconds = 0.0
        self.flex_error: str | None = None

    def layout(self, nq: int, nk: int, device: torch.device | str = "cpu") -> Tensor:
        """The bool (nQb, nKb) block layout for these lengths, cached per (Nq, Nk, device)."""
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
            self._kept_fractions[(nq, nk)] = layout.float().mean().item()  # no sync later
        return self._layouts[key]

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> Tensor:
        scale = default_scale(q, scale)
        nq, nk = q.shape[2], k.shape[2]
        layout = self.layout(nq, nk, q.device)
        self.last_kept_fraction = self._kept_fractions[(nq, nk)]
        if q.device.type in self.flex_devices:
            out = self._forward_flex(q, k, v, layout, key_padding_mask, scale)
            if out is not None:
                self.last_implementation = "flex_attention"
                return out
        self.last_implementation = "blocks"
        return block_sparse_attention(
            q, k, v, layout, self.options.block_size, key_padding_mask, scale
        )

    def supports(self, q, k, v, key_padding_mask=None) -> str | None:
        try:
            return _input_problem(q, k, v, key_padding_mask)
        except Exception as error:  # supports() must answer, never raise
            return f"cannot inspect the input: {error}"

    def attention_weights(self, q, k, v, key_padding_mask=None, scale=None) -> Tensor:
        """Dense (B, H, Nq, Nk) weights: softmax over the real keys of the kept blocks."""
        nq, nk = q.shape[2], k.shape[2]
        keep = element_mask(self.layout(nq, nk, q.device), nq, nk, self.options.block_size)
        keep = keep[None, None]
        if key_padding_mask is not None:
            keep = keep & key_padding_mask[:, None, None, :]
        work = _compute_dtype(q.dtype)
        scores = torch.matmul(q.to(work), k.to(work).transpose(-2, -1)) * default_scale(q, scale)
        return _masked_softmax(scores, keep).to(q.dtype)

    def describe(self) -> dict:
        info = {
            "kernel": "block-sparse",
            "implementation": self.last_implementation,
            "pattern": self.options.pattern,
            "block_size": self.options.block_size,
            "kept_fraction": self.last_kept_fraction,
            "compile_seconds": round(self.compile_seconds, 4),
        }
        if self.flex_error:
            info["flex_error"] = self.flex_error
        return info

    def _forward_flex(self, q, k, v, layout, key_padding_mask, scale) -> Tensor | None:
        """FlexAttention's output, or None when it cannot compile or run this input."""
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
        signature = (q.shape, k.shape, v.shape, q.dtype, key_padding_mask is not None, needs_grad)
        route = self._flex_routes.get(signature)
        if route == "blocks":
            return None
        start = time.perf_counter()
        try:
            block_mask = self._block_mask(layout, q.shape[2], k.shape[2], q.device)
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
            self._flex_routes[signature] = "flex_attention"
        return out

    def _block_mask(self, layout: Tensor, nq: int, nk: int, device: torch.device) -> Any:
        key = (nq, nk, device)
        if key not in self._block_masks:
            self._block_masks[key] = layout_block_mask(layout, self.options.block_size, nq, nk)
        return self._block_masks[key]


def block_sparse_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    layout: Tensor,
    block_size: int,
    key_padding_mask: Tensor | None,
    scale: float,
) -> Tensor:
    """softmax over the kept key blocks, computed block by block (the ``blocks`` path).

    Every query block gets the same number of key-block slots (the most any row keeps);
    unused slots point at block 0 and are masked. Scores of a chunk of query blocks are
    ``(B, H, chunk, bs, slots·bs)``, and the chunk is sized to keep that under
    :data:`CHUNK_ELEMENTS`, so memory is bounded whatever Nq and Nk are.
    """
    batch, heads, nq, dim = q.shape
    nk, dim_v = k.shape[2], v.shape[-1]
    n_qb, n_kb = layout.shape
    bs = block_size
    work = _compute_dtype(q.dtype)

    kept = layout.sum(dim=1)
    slots = int(kept.max())
    # Kept block indices first (ascending, thanks to the stable sort), then filler.
    picks = layout.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :slots]
    slot_used = torch.arange(slots, device=layout.device)[None, :] < kept[:, None]

    real = torch.ones(batch, nk, dtype=torch.bool, device=q.device)
    if key_padding_mask is not None:
        real = key_padding_mask.to(torch.bool)
    real_blocks = _pad_length(real, n_kb * bs, dim=1).view(batch, n_kb, bs)
    q_blocks = _pad_length(q, n_qb * bs, dim=2).view(batch, heads, n_qb, bs, dim)
    k_blocks = _pad_length(k, n_kb * bs, dim=2).view(batch, heads, n_kb, bs, dim)
    v_blocks = _pad_length(v, n_kb * bs, dim=2).view(batch, heads, n_kb, bs, dim_v)

    per_block = batch * heads * bs * max(slots * bs, dim, dim_v)
    chunk = max(1, CHUNK_ELEMENTS // per_block)
    outputs = []
    for start in range(0, n_qb, chunk):
        index = picks[start : start + chunk]  # (c, slots)
        c, width = index.shape[0], slots * bs
        keys = k_blocks[:, :, index].reshape(batch, heads, c, width, dim).to(work)
        values = v_blocks[:, :, index].reshape(batch, heads, c, width, dim_v).to(work)
        keep = real_blocks[:, index] & slot_used[start : start + c, :, None]
        keep = keep.reshape(batch, 1, c, 1, width)
        queries = q_blocks[:, :, start : start + c].to(work)
        scores = torch.matmul(queries, keys.transpose(-2, -1)) * scale
        outputs.append(torch.matmul(_masked_softmax(scores, keep), values))
    out = torch.cat(outputs, dim=2).reshape(batch, heads, n_qb * bs, dim_v)
    return out[:, :, :nq].to(q.dtype)


def layout_block_mask(layout: Tensor, block_size: int, nq: int, nk: int) -> Any:
    """A FlexAttention ``BlockMask`` for ``layout``.

    The mask_mod is exact at the element level; the BlockMask's tiles (multiples of the
    kernel's tiles) only decide which tiles are skipped outright.
    """
    from torch.nn.attention.flex_attention import create_block_mask

    def in_layout(b, h, q_idx, kv_idx):
        return layout[q_idx // block_size, kv_idx // block_size]

    tile = block_size if block_size % FLEX_TILE == 0 else FLEX_TILE
    return create_block_mask(in_layout, None, None, nq, nk, device=layout.device, BLOCK_SIZE=tile)


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


def _pad_length(x: Tensor, length: int, dim: int) -> Tensor:
    """``x`` padded with zeros (False) along ``dim`` to ``length``."""
    missing = length - x.shape[dim]
    if missing == 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x, x.new_zeros(shape)], dim=dim)


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


@xbench.hookimpl
def xbench_register_backends(register):
    register(
        BackendSpec(
            name="sparse",
            build=SparseAttention,
            options=SparseOptions,
            exact=False,
            description="Block-sparse softmax attention (local / strided / bigbird layouts); "
            "FlexAttention on CUDA, block gather elsewhere.",
        )
    )

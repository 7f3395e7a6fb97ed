"""The ``sparse`` backend against its own definition — float64 softmax over the real keys of
the kept key blocks, built here densely from the layout — plus its layouts, its padding
contract, gradients, precision, bounded memory, and the FlexAttention route's control flow
(exercised on CPU with uncompiled FlexAttention)."""

from __future__ import annotations

import math
import time
import warnings

import pytest
import torch
from torch.nn.attention.flex_attention import flex_attention

import xbench_plugins.sparse as sparse
from xbench.api.backend import PreparedMemory, QueryPositions
from xbench.api.errors import UserError
from xbench.api.options import build_options
from xbench.measure.memory import peak_memory_bytes
from xbench.registry import load_registry
from xbench.testing import Case, Shape, lengths_mask, make_inputs
from xbench_plugins.naive import NaiveAttention
from xbench_plugins.sparse import SparseAttention, SparseOptions
from xbench_plugins.sparse_patterns import (
    PATTERNS,
    aligned_key_blocks,
    block_layout,
    element_mask,
)

SHAPES = [(96, 200), (1, 300), (257, 130)]
DIMS = [(32, 48), (64, 64), (80, 80), (128, 96)]


def build(**options) -> SparseAttention:
    return SparseAttention(SparseOptions(**options))


def kept_block_weights(backend, q, k, mask=None, scale=None) -> torch.Tensor:
    """Float64 softmax over the keys whose block the layout keeps and that are real."""
    nq, nk, bs = q.shape[2], k.shape[2], backend.options.block_size
    layout = backend.layout(nq, nk)
    keep = layout[torch.arange(nq) // bs][:, torch.arange(nk) // bs][None, None]
    if mask is not None:
        keep = keep & mask[:, None, None, :]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q.double() @ k.double().transpose(-2, -1) * scale
    weights = torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1)
    return weights.nan_to_num(0.0)  # rows without a kept real key: zeros


def kept_block_attention(backend, q, k, v, mask=None, scale=None) -> torch.Tensor:
    return kept_block_weights(backend, q, k, mask, scale) @ v.double()


def column_attention(backend, q, k, v, mask, start: int, total: int) -> torch.Tensor:
    """Float64 definition for queries at the columns start.. of ``total``: the layout rows
    of those columns (built here from block indices, not through the backend's code)."""
    bs, nq, nk = backend.options.block_size, q.shape[2], k.shape[2]
    layout = backend.layout(total, nk)
    keep = layout[(start + torch.arange(nq)) // bs][:, torch.arange(nk) // bs][None, None]
    keep = keep & mask[:, None, None, :]
    scores = q.double() @ k.double().transpose(-2, -1) / math.sqrt(q.shape[-1])
    weights = torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1).nan_to_num(0.0)
    return weights @ v.double()


# Key masks of three styles: unpadded, left-padded (padding first), right-padded.
def styled_mask(nk: int) -> torch.Tensor:
    keys = torch.arange(nk)
    return torch.stack([keys >= 0, keys >= nk // 3, keys < nk - nk // 4])


def test_registers_as_an_inexact_backend_with_validated_options():
    registry = load_registry(extra_plugins=[("sparse", sparse)], use_entry_points=False)
    spec = registry.backend("sparse")
    assert spec.exact is False
    assert spec.options is SparseOptions

    backend = spec.build(build_options(spec.options, {"pattern": "strided"}, "backend"))
    assert isinstance(backend, SparseAttention)
    assert backend.options == SparseOptions(pattern="strided")
    defaults = SparseOptions()
    assert (defaults.pattern, defaults.block_size, defaults.window) == ("local", 64, 1)
    assert (defaults.stride, defaults.global_blocks, defaults.random_blocks) == (4, 1, 1)

    with pytest.raises(UserError, match="local, strided, bigbird"):
        build_options(spec.options, {"pattern": "dilated"}, "backend")
    with pytest.raises(UserError, match="backend.block_size"):
        build_options(spec.options, {"block_size": 0}, "backend")
    with pytest.raises(UserError, match="backend.window"):
        build_options(spec.options, {"window": -1}, "backend")


@pytest.mark.parametrize("block_size", [16, 32])
@pytest.mark.parametrize("d,dv", DIMS, ids=[f"D{d}-Dv{dv}" for d, dv in DIMS])
@pytest.mark.parametrize("nq,nk", SHAPES, ids=[f"{nq}x{nk}" for nq, nk in SHAPES])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_matches_its_own_definition(pattern, nq, nk, d, dv, block_size):
    backend = build(pattern=pattern, block_size=block_size, random_blocks=2)
    q, k, v = make_inputs(Shape(nq=nq, nk=nk, d=d, dv=dv, batch=2), seed=nq + d)
    mask = lengths_mask([nk, nk // 3], nk)

    out = backend(q, k, v, key_padding_mask=mask)
    weights = backend.attention_weights(q, k, v, mask)

    assert out.shape == (2, 2, nq, dv) and out.dtype == q.dtype
    torch.testing.assert_close(
        out.double(), kept_block_attention(backend, q, k, v, mask), atol=2e-5, rtol=0
    )
    expected = kept_block_weights(backend, q, k, mask)
    torch.testing.assert_close(weights.double(), expected, atol=2e-6, rtol=0)
    assert backend.supports(q, k, v, mask) is None


@pytest.mark.parametrize("pattern", PATTERNS)
def test_float64_agrees_to_rounding_and_scale_is_respected(pattern):
    backend = build(pattern=pattern, block_size=16, window=0)
    q, k, v = make_inputs(Shape(nq=70, nk=150, d=32, dv=24, batch=2), Case("cpu", torch.float64))
    mask = lengths_mask([150, 61], 150)

    out = backend(q, k, v, key_padding_mask=mask, scale=0.37)

    expected = kept_block_attention(backend, q, k, v, mask, scale=0.37)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("block_size", [16, 32])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_padding_inside_the_last_block_equals_truncating_the_keys(pattern, block_size):
    # Nk=200 and 193..200 real keys span the same key blocks, hence the same layout.
    backend = build(pattern=pattern, block_size=block_size)
    real = [200, 197, 193]
    q, k, v = make_inputs(Shape(nq=96, nk=200, d=32, dv=40))

    out = backend(q, k, v, key_padding_mask=lengths_mask(real, 200))

    for b, n in enumerate(real):
        alone = backend(q[b : b + 1], k[b : b + 1, :, :n], v[b : b + 1, :, :n])
        torch.testing.assert_close(out[b : b + 1], alone, atol=1e-6, rtol=0)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_padded_keys_have_no_influence(pattern):
    backend = build(pattern=pattern, block_size=16)
    q, k, v = make_inputs(Shape(nq=64, nk=160, d=32, batch=2))
    mask = lengths_mask([160, 40], 160)  # item 1: the layout sees 160 keys, 40 are real
    out = backend(q, k, v, key_padding_mask=mask)

    k2, v2 = k.clone(), v.clone()
    k2[~mask[:, None, :, None].expand_as(k)] = 1e4
    v2[~mask[:, None, :, None].expand_as(v)] = -1e4
    out2 = backend(q, k2, v2, key_padding_mask=mask)

    torch.testing.assert_close(out, out2, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        out.double(), kept_block_attention(backend, q, k, v, mask), atol=2e-5, rtol=0
    )


def test_queries_without_a_real_kept_key_get_zeros_and_finite_gradients():
    # Local window 0: query blocks aligned past the 40 real keys of item 0 keep none of them.
    backend = build(pattern="local", block_size=32, window=0)
    q, k, v = make_inputs(Shape(nq=128, nk=256, d=32))
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    mask = lengths_mask([40, 0, 256], 256)  # item 1: every key padded

    out = backend(q, k, v, key_padding_mask=mask)
    (out * torch.randn_like(out)).sum().backward()

    assert torch.isfinite(out).all()
    assert (out[1] == 0).all()
    assert (out[0, :, 32:] == 0).all() and (out[0, :, :16].abs() > 0).any()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert (q.grad[1] == 0).all() and (k.grad[1] == 0).all() and (v.grad[1] == 0).all()
    weights = backend.attention_weights(q, k, v, mask)
    assert (weights[1] == 0).all() and torch.isfinite(weights).all()


@pytest.mark.parametrize("pattern", PATTERNS)
def test_gradients_reach_q_k_v_and_match_the_definition(pattern):
    backend = build(pattern=pattern, block_size=16)
    q, k, v = make_inputs(Shape(nq=48, nk=100, d=16, dv=24, batch=2), Case("cpu", torch.float64))
    mask = lengths_mask([100, 70], 100)
    grad_out = torch.randn(2, 2, 48, 24, dtype=torch.float64)

    def grads(fn):
        inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        (fn(*inputs) * grad_out).sum().backward()
        return [t.grad for t in inputs]

    got = grads(lambda q, k, v: backend(q, k, v, key_padding_mask=mask))
    expected = grads(lambda q, k, v: kept_block_attention(backend, q, k, v, mask))

    for g, e in zip(got, expected, strict=True):
        assert g.abs().sum() > 0
        torch.testing.assert_close(g, e, atol=1e-10, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_half_precision_is_close_to_float32(pattern, dtype):
    backend = build(pattern=pattern, block_size=32)
    q, k, v = make_inputs(Shape(nq=96, nk=200, d=64, batch=2))
    mask = lengths_mask([200, 150], 200)

    low = backend(q.to(dtype), k.to(dtype), v.to(dtype), key_padding_mask=mask)
    full = backend(q, k, v, key_padding_mask=mask)

    assert low.dtype == dtype
    torch.testing.assert_close(low.float(), full, atol=3e-2, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_large_magnitude_inputs_stay_finite(dtype):
    # Scores of ~1e3: softmax is nearly one-hot, so near-ties make any comparison with a
    # reference ill-conditioned; what must hold is finiteness and convex combinations.
    backend = build(pattern="bigbird", block_size=16)
    q, k, v = (t.to(dtype) for t in make_inputs(Shape(nq=64, nk=128, d=32, batch=2)))
    q, k = (t.mul(30).requires_grad_() for t in (q, k))
    mask = lengths_mask([128, 50], 128)  # the global block 0 gives every query a real key

    out = backend(q, k, v, key_padding_mask=mask)
    out.float().square().sum().backward()
    weights = backend.attention_weights(q, k, v, mask).float()

    assert torch.isfinite(out).all()
    assert torch.isfinite(q.grad).all() and torch.isfinite(k.grad).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 64), atol=1e-2, rtol=0)
    assert out.float().abs().max() <= v.float().abs().max() + 1e-2


@pytest.mark.parametrize("pattern", PATTERNS)
def test_window_covering_every_block_is_exact_attention(pattern):
    backend = build(pattern=pattern, block_size=16, window=100)
    q, k, v = make_inputs(Shape(nq=96, nk=200, d=32, dv=48, batch=2))
    mask = lengths_mask([200, 33], 200)

    out = backend(q, k, v, key_padding_mask=mask)

    expected = NaiveAttention()(q, k, v, key_padding_mask=mask)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert backend.describe()["kept_fraction"] == 1.0


@pytest.mark.parametrize("window", [0, 1, 2])
def test_local_layout_keeps_the_window_around_the_aligned_block(window):
    backend = build(pattern="local", block_size=64, window=window)
    layout = backend.layout(1024, 2048)  # 16 query blocks, 32 key blocks
    n_qb, n_kb = layout.shape

    assert (n_qb, n_kb) == (16, 32)
    for i in range(n_qb):
        centre = (2 * i + 1) * n_kb // (2 * n_qb)  # floor((i + 0.5) * nKb / nQb) = 2i + 1
        expected = {j for j in range(centre - window, centre + window + 1) if 0 <= j < n_kb}
        assert set(layout[i].nonzero().flatten().tolist()) == expected
    kept = layout.float().mean().item()
    assert kept == pytest.approx((2 * window + 1) / n_kb, rel=0.1)
    if window == 1:
        assert 1 - kept >= 0.75


def test_aligned_blocks_follow_relative_position_for_any_lengths():
    assert aligned_key_blocks(1, 5).tolist() == [2]
    assert aligned_key_blocks(4, 8).tolist() == [1, 3, 5, 7]
    assert aligned_key_blocks(8, 2).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    centres = aligned_key_blocks(17, 5)
    assert (centres.diff() >= 0).all() and centres.min() == 0 and centres.max() == 4


def test_strided_layout_adds_every_stride_th_block():
    layout = block_layout(
        "strided", 6, 20, window=1, stride=4, global_blocks=0, random_blocks=0, seed=0
    )
    local = block_layout(
        "local", 6, 20, window=1, stride=4, global_blocks=0, random_blocks=0, seed=0
    )
    assert layout[:, ::4].all()
    assert torch.equal(layout[:, torch.arange(20) % 4 != 0], local[:, torch.arange(20) % 4 != 0])


def test_bigbird_layout_is_deterministic_per_seed_and_has_global_and_random_blocks():
    def layout(seed, nq=2048, nk=4096):
        return build(pattern="bigbird", global_blocks=2, random_blocks=3, seed=seed).layout(nq, nk)

    first = layout(seed=7)
    assert torch.equal(first, layout(seed=7))
    assert not torch.equal(first, layout(seed=8))
    assert first[:, :2].all()
    local = build(pattern="local").layout(2048, 4096)
    extra = (first & ~local & (torch.arange(64) >= 2)).sum(dim=1)
    assert (extra == 3).all()  # 3 random blocks per query block, never a repeat of a kept one
    # Few key blocks: random picks run out of free blocks without duplicating any.
    assert layout(seed=7, nq=512, nk=320).all()


def test_layout_is_cached_per_shape():
    backend = build()
    assert backend.layout(96, 200) is backend.layout(96, 200)
    assert backend.layout(96, 200).shape == (2, 4)
    assert backend.layout(96, 300).shape == (2, 5)


def test_supports_answers_with_a_reason_and_never_raises():
    backend = build()
    q, k, v = make_inputs(Shape(nq=4, nk=9, d=16, batch=2))
    assert backend.supports(q, k, v, lengths_mask([9, 2], 9)) is None
    assert "shapes do not match" in backend.supports(q, k[..., :8], v)
    assert "bool" in backend.supports(q, k, v, torch.ones(2, 9))
    assert "bool" in backend.supports(q, k, v, torch.ones(2, 8, dtype=torch.bool))
    assert "4-D" in backend.supports(q[0], k, v)
    assert "at least one" in backend.supports(q, k[:, :, :0], v[:, :, :0])
    assert isinstance(backend.supports(None, k, v), str)


def test_describe_reports_what_ran():
    backend = build(pattern="strided", block_size=32)
    q, k, v = make_inputs(Shape(nq=64, nk=256, d=16, batch=2))
    backend(q, k, v)

    info = backend.describe()

    assert info["kernel"] == "block-sparse"
    assert info["implementation"] == "blocks"
    assert (info["pattern"], info["block_size"]) == ("strided", 32)
    assert info["kept_fraction"] == pytest.approx(backend.layout(64, 256).float().mean().item())
    assert info["compile_seconds"] == 0.0


def test_long_sequences_run_in_bounded_memory():
    n, heads, dim = 16384, 4, 64
    backend = build(pattern="local", block_size=64, window=1)
    q, k, v = make_inputs(Shape(nq=n, nk=n, d=dim, batch=1, heads=heads))
    full_scores = 1 * heads * n * n * 4  # the fp32 score matrix exact attention would need

    def call():
        with torch.no_grad():
            return backend(q, k, v)

    start = time.perf_counter()
    out = call()
    seconds = time.perf_counter() - start
    peak = peak_memory_bytes(call, torch.device("cpu"))

    assert full_scores == 4 * 2**30
    assert seconds < 5.0
    assert peak < full_scores / 4
    rows = torch.tensor([0, 5000, n - 1])  # spot-check a few queries against the definition
    keep = backend.layout(n, n)[rows // 64][:, torch.arange(n) // 64]
    scores = (q[:, :, rows].double() @ k.double().transpose(-2, -1)) / math.sqrt(dim)
    expected = torch.softmax(scores.masked_fill(~keep, float("-inf")), -1) @ v.double()
    torch.testing.assert_close(out[:, :, rows].double(), expected, atol=1e-5, rtol=0)


# Positions: the layout of ``total`` query columns, the rows of the call's columns.

DECODE_TOTALS = {"total=Nq": 40, "total>Nq": 75}


@pytest.mark.parametrize("total", list(DECODE_TOTALS))
@pytest.mark.parametrize("block_size", [4, 16, 32])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_decode_steps_equal_the_teacher_forced_rows(pattern, block_size, total):
    columns = DECODE_TOTALS[total]
    backend = build(pattern=pattern, block_size=block_size, window=0, stride=3)
    q, k, v = make_inputs(Shape(nq=40, nk=100, d=16, dv=8), seed=block_size)
    mask = styled_mask(100)
    memory = backend.prepare(k, v, mask)

    whole = backend.attend(q, memory, QueryPositions(start=0, total=columns))

    expected = column_attention(backend, q, k, v, mask, start=0, total=columns)
    torch.testing.assert_close(whole.double(), expected, atol=2e-5, rtol=0)
    for i in range(40):
        step = backend.attend(q[:, :, i : i + 1], memory, QueryPositions(start=i, total=columns))
        torch.testing.assert_close(step, whole[:, :, i : i + 1], atol=1e-6, rtol=0)
    prompt = backend.attend(q[:, :, 3:29], memory, QueryPositions(start=3, total=columns))
    torch.testing.assert_close(prompt, whole[:, :, 3:29], atol=1e-6, rtol=0)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_forward_is_attend_at_the_whole_sequence_and_a_longer_total_realigns(pattern):
    backend = build(pattern=pattern, block_size=8, window=0)
    q, k, v = make_inputs(Shape(nq=32, nk=96, d=16))
    mask = styled_mask(96)
    memory = PreparedMemory(k, v, mask)

    out = backend(q, k, v, key_padding_mask=mask)

    assert torch.equal(backend.attend(q, memory), out)
    assert torch.equal(backend.attend(q, memory, QueryPositions.whole(32)), out)
    longer = backend.attend(q, memory, QueryPositions(start=0, total=64))
    assert (longer - out).abs().max() > 0.1  # the first 32 of 64 columns align elsewhere


@pytest.mark.parametrize("pattern", PATTERNS)
def test_attend_weights_follow_the_positions(pattern):
    backend = build(pattern=pattern, block_size=8, window=0)
    q, k, v = make_inputs(Shape(nq=5, nk=64, d=16))
    mask = styled_mask(64)
    memory = PreparedMemory(k, v, mask)
    positions = QueryPositions(start=30, total=48)

    weights = backend.attend_weights(q, memory, positions)

    keep = element_mask(backend.layout(48, 64), 5, 64, 8, start=30)
    assert torch.equal(
        weights > 0, (keep[None, None] & mask[:, None, None, :]).expand(-1, 2, -1, -1)
    )
    torch.testing.assert_close(weights @ v, backend.attend(q, memory, positions), atol=1e-6, rtol=0)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_decode_row_reads_only_its_blocks_kept_keys(pattern):
    backend = build(pattern=pattern, block_size=16, window=1, stride=4)
    total, nk = 200, 1000
    layout = backend.layout(total, nk)

    for column in (0, 17, 95, 199):
        (group,) = sparse.row_groups(layout, 16, 1, nk, start=column)
        read = (
            set(group.index.tolist())
            if group.index is not None
            else set(range(group.key_start, group.key_start + group.width))
        )
        block = layout[column // 16]
        assert (group.start, group.rows, group.count) == (0, 1, 1)
        assert read == {j for j in range(nk) if block[j // 16]}

    q, k, v = make_inputs(Shape(nq=1, nk=nk, d=16, batch=1))
    backend.attend(q, PreparedMemory(k, v), QueryPositions(start=95, total=total))
    kept = backend.describe()["kept_fraction"]
    assert kept == pytest.approx(layout[95 // 16].float().mean().item())
    assert kept < 0.5


def test_row_groups_of_a_query_range_are_those_rows_of_the_whole_list():
    backend = build(pattern="local", block_size=8, window=1)
    layout = backend.layout(64, 256)
    q, k, v = make_inputs(Shape(nq=64, nk=256, d=16, batch=1))
    groups = sparse.row_groups(layout, 8, 64, 256)
    whole = sparse.block_sparse_attention(q, k, v, groups, None, 0.25)

    part = sparse.row_groups(layout, 8, 21, 256, start=5)

    assert sum(g.rows * g.count for g in part) == 21
    out = sparse.block_sparse_attention(q[:, :, 5:26], k, v, part, None, 0.25)
    torch.testing.assert_close(out, whole[:, :, 5:26], atol=1e-6, rtol=0)


def test_positions_running_past_the_total_are_rejected():
    backend = build(block_size=8)
    q, k, v = make_inputs(Shape(nq=4, nk=16, d=16))
    with pytest.raises(ValueError, match="4 queries from column 6 run past the 8 columns"):
        backend.attend(q, PreparedMemory(k, v), QueryPositions(start=6, total=8))


# The FlexAttention route, exercised on CPU: uncompiled FlexAttention computes the same
# masks as the compiled CUDA kernel (no backward on CPU, hence no_grad).


@pytest.fixture
def eager_flex(monkeypatch):
    monkeypatch.setattr(sparse, "compiled_flex_attention", lambda: flex_attention)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "called without torch.compile"
        yield


@pytest.mark.parametrize("block_size", [16, 64, 256])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_flex_route_matches_the_block_route(eager_flex, pattern, block_size):
    backend = build(pattern=pattern, block_size=block_size)
    backend.flex_devices = ("cpu",)
    q, k, v = make_inputs(Shape(nq=300, nk=700, d=32, dv=48))
    mask = lengths_mask([700, 100, 0], 700)

    with torch.no_grad():
        out = backend(q, k, v, key_padding_mask=mask)

    assert backend.describe()["implementation"] == "flex_attention"
    assert (out[2] == 0).all()
    torch.testing.assert_close(
        out.double(), kept_block_attention(backend, q, k, v, mask), atol=2e-5, rtol=0
    )


@pytest.mark.parametrize("total", [120, 300])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_flex_route_aligns_decode_steps_like_the_block_route(eager_flex, pattern, total):
    backend = build(pattern=pattern, block_size=16)
    backend.flex_devices = ("cpu",)
    blocks = build(pattern=pattern, block_size=16)
    q, k, v = make_inputs(Shape(nq=120, nk=400, d=32, dv=16))
    memory = PreparedMemory(k, v, styled_mask(400))

    with torch.no_grad():
        for start, stop in [(0, 120), (0, 1), (37, 38), (119, 120), (50, 90)]:
            positions = QueryPositions(start=start, total=total)
            out = backend.attend(q[:, :, start:stop], memory, positions)

            assert backend.describe()["implementation"] == "flex_attention"
            expected = blocks.attend(q[:, :, start:stop], memory, positions)
            torch.testing.assert_close(out, expected, atol=2e-5, rtol=0)


def test_flex_failure_falls_back_to_blocks_once_per_signature(monkeypatch):
    calls = []

    def broken():
        calls.append(1)
        raise RuntimeError("no triton here")

    monkeypatch.setattr(sparse, "compiled_flex_attention", broken)
    backend = build(pattern="local", block_size=16)
    backend.flex_devices = ("cpu",)
    q, k, v = make_inputs(Shape(nq=40, nk=90, d=16, batch=2))

    first = backend(q, k, v)
    second = backend(q, k, v)

    info = backend.describe()
    assert info["implementation"] == "blocks"
    assert "no triton here" in info["flex_error"]
    assert len(calls) == 1
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(
        first.double(), kept_block_attention(backend, q, k, v), atol=2e-5, rtol=0
    )

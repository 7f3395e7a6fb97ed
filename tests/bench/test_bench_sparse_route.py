"""The sparse backend races FlexAttention against its ``blocks`` path once per inference
signature (on CUDA by default) and keeps the faster; exercised here on CPU with eager
FlexAttention, the route must follow the recorded timings and the output stays exact."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.nn.attention.flex_attention import flex_attention

import xbench_plugins.sparse as sparse
from xbench_plugins.sparse import SparseAttention, SparseOptions


@pytest.fixture
def racing_backend(monkeypatch):
    monkeypatch.setattr(sparse, "compiled_flex_attention", lambda: flex_attention)
    backend = SparseAttention(SparseOptions(pattern="local", block_size=32, window=1))
    backend.flex_devices = backend.race_devices = ("cpu",)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "called without torch.compile"
        yield backend


def inputs(nq=128, nk=256):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(2, 2, n, 16, generator=generator) for n in (nq, nk, nk)]


def test_inference_keeps_the_faster_route_and_the_same_result(racing_backend):
    q, k, v = inputs()
    with torch.no_grad():
        first = racing_backend(q, k, v)
        info = racing_backend.describe()
        second = racing_backend(q, k, v)

    timings = info["route_ms"]
    assert set(timings) == {"flex_attention", "blocks"} and min(timings.values()) > 0
    assert info["implementation"] == min(timings, key=timings.get)
    assert racing_backend.describe()["implementation"] == info["implementation"]
    assert info["tune_seconds"] > 0
    groups = sparse.row_groups(racing_backend.layout(128, 256), 32, 128, 256)
    expected = sparse.block_sparse_attention(q, k, v, groups, None, 16**-0.5)
    torch.testing.assert_close(first, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(second, first, atol=1e-5, rtol=0)


def test_runs_of_evenly_stepping_rows_share_one_group():
    # Nk = 2·Nq: query block i keeps key blocks 2i .. 2i+2, one stride-2 run plus the clipped end.
    backend = SparseAttention(SparseOptions(pattern="local", block_size=64, window=1))
    groups = sparse.row_groups(backend.layout(1024, 2048), 64, 1024, 2048)

    assert [(g.start, g.count, g.key_start, g.width, g.step) for g in groups] == [
        (0, 15, 0, 192, 128),
        (960, 1, 1920, 128, 0),
    ]

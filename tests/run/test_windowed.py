"""The encoder's banded self-attention equals full attention under the band mask, padding
included, and a window as long as the source is full attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xbench.config.settings import ModelSettings
from xbench.run.model import SelfAttention
from xbench.run.windowed import windowed_attention


def band_mask(length: int, window: int) -> torch.Tensor:
    """(length, length) bool: True where ``|i − j| <= window``."""
    index = torch.arange(length)
    return (index[:, None] - index[None, :]).abs() <= window


def _reference(q, k, v, real, window):
    allowed = band_mask(q.shape[2], window)[None, None] & real[:, None, None, :]
    allowed = allowed | torch.eye(q.shape[2], dtype=torch.bool)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


@pytest.mark.parametrize(("length", "window"), [(37, 5), (64, 16), (10, 16), (1, 3)])
def test_banded_attention_equals_the_masked_reference(length, window):
    torch.manual_seed(length)
    q, k, v = (torch.randn(2, 3, length, 8) for _ in range(3))
    real = torch.ones(2, length, dtype=torch.bool)
    real[1, length - length // 3 :] = False

    out = windowed_attention(q, k, v, real, window)

    rows = real[:, None, :, None]  # padded rows are ignored downstream
    torch.testing.assert_close(out * rows, _reference(q, k, v, real, window) * rows)


def test_the_band_matters():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 1, 40, 8) for _ in range(3))

    banded = windowed_attention(q, k, v, None, 4)
    full = F.scaled_dot_product_attention(q, k, v)

    assert not torch.allclose(banded, full, atol=1e-3)


def test_gradients_reach_every_input():
    q, k, v = (torch.randn(1, 2, 30, 4, requires_grad=True) for _ in range(3))

    windowed_attention(q, k, v, None, 7).sum().backward()

    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (q, k, v))


def test_a_window_covering_the_source_is_full_attention():
    torch.manual_seed(1)
    config = ModelSettings(d_model=16, heads=2)
    full, banded = SelfAttention(config), SelfAttention(config, window=50)
    banded.load_state_dict(full.state_dict())
    x = torch.randn(2, 20, 16)
    real = torch.ones(2, 20, dtype=torch.bool)
    real[0, 15:] = False

    torch.testing.assert_close(banded(x, real)[0, :15], full(x, real)[0, :15])
    torch.testing.assert_close(banded(x, real)[1], full(x, real)[1])

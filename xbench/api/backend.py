"""The attention-backend contract (see DESIGN.md, "Backend").

Shapes: ``q (B, H, Nq, D)``, ``k (B, H, Nk, D)``, ``v (B, H, Nk, Dv)`` → ``out (B, H, Nq, Dv)``.
``key_padding_mask (B, Nk)`` is boolean with True for a real key. Padded keys get zero
weight, and a query whose keys are all padded returns zeros, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


class AttentionBackend(nn.Module):
    """Base class for cross-attention backends; subclasses implement :meth:`forward`."""

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> Tensor:
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

        The default is exact masked softmax, right for every exact backend.
        """
        return masked_softmax_weights(q, k, key_padding_mask, scale)

    def describe(self) -> dict[str, Any]:
        """What actually ran (kernel, implementation, ...); stored in the run record."""
        return {}


@dataclass(frozen=True)
class BackendSpec:
    """What a plugin registers: a named factory of :class:`AttentionBackend`."""

    name: str
    build: Callable[[Any], AttentionBackend]
    options: type
    exact: bool
    description: str


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

"""``uniform``: a control that weights every real key equally.

It ignores the queries, so a task it solves does not need cross-attention: a good task
makes it score far below the real backends. ``prepare`` pools the values once per source;
``attend`` only repeats the pooled row for each query.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

import xbench
from xbench.api.backend import AttentionBackend, BackendSpec, PreparedMemory, QueryPositions


@dataclass
class UniformOptions:
    """The control has nothing to tune."""


def _key_weights(k: Tensor, key_padding_mask: Tensor | None) -> Tensor:
    """(B, 1, 1, Nk) weights: 1/(number of real keys) on real keys, 0 elsewhere."""
    if key_padding_mask is None:
        real = torch.ones(k.shape[0], k.shape[2], dtype=k.dtype, device=k.device)
    else:
        real = key_padding_mask.to(k.dtype)
    return (real / real.sum(-1, keepdim=True).clamp_min(1.0))[:, None, None, :]


@dataclass(frozen=True, kw_only=True)
class PooledMemory(PreparedMemory):
    """``pooled`` (B, H, 1, Dv): the mean of the real values, the whole answer to any query."""

    pooled: Tensor


class UniformAttention(AttentionBackend):
    """out[b, h, i] = mean of v[b, h, j] over real keys j, for every query i."""

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> Tensor:
        return self.attend(q, self.prepare(k, v, key_padding_mask, scale))

    def prepare(
        self,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> PooledMemory:
        pooled = torch.matmul(_key_weights(k, key_padding_mask), v)
        return PooledMemory(k, v, key_padding_mask, scale, pooled=pooled)

    def attend(
        self, q: Tensor, memory: PooledMemory, positions: QueryPositions | None = None
    ) -> Tensor:
        return memory.pooled.expand(-1, -1, q.shape[2], -1)

    def attention_weights(self, q, k, v, key_padding_mask=None, scale=None) -> Tensor:
        weights = _key_weights(k, key_padding_mask)
        return weights.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])

    def describe(self) -> dict:
        return {"kernel": "mean-over-real-keys"}


def build_uniform(options: UniformOptions) -> UniformAttention:
    return UniformAttention()


@xbench.hookimpl
def xbench_register_backends(register):
    register(
        BackendSpec(
            name="uniform",
            build=build_uniform,
            options=UniformOptions,
            exact=False,
            description="Control: every real key gets the same weight (ignores queries).",
        )
    )

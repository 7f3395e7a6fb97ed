"""``naive``: explicit softmax(QKᵀ·scale + mask)·V — the readable reference backend."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

import xbench
from xbench.api.backend import AttentionBackend, BackendSpec, masked_softmax_weights


@dataclass
class NaiveOptions:
    """The reference has nothing to tune."""


class NaiveAttention(AttentionBackend):
    """Materialises the (B, H, Nq, Nk) score matrix: clear, and O(Nq·Nk) in memory."""

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> Tensor:
        return torch.matmul(masked_softmax_weights(q, k, key_padding_mask, scale), v)

    def describe(self) -> dict:
        return {"kernel": "matmul-softmax-matmul"}


def build_naive(options: NaiveOptions) -> NaiveAttention:
    return NaiveAttention()


@xbench.hookimpl
def xbench_register_backends(register):
    register(
        BackendSpec(
            name="naive",
            build=build_naive,
            options=NaiveOptions,
            exact=True,
            description="Explicit softmax(QK^T*scale + mask)V; the reference.",
        )
    )

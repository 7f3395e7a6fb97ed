"""``sigmoid``: sigmoid attention as an xbench backend, in one module.

    out_i = Σ_j σ(q_i·k_j·scale + b) v_j      over the real keys j

Each key's weight is independent of the others (no row normalisation), which is what makes
sigmoid attention cheap to tile. The bias ``b`` defaults to ``-log(n)``, n = the number of
real keys of the item, so a row's weights start out summing to about 1 whatever the length
(Ramapuram et al., "Theory, Analysis, and Best Practices for Sigmoid Self-Attention", 2024).
Padded keys get weight 0; an item with no real key returns zeros.

This package also shows what a third-party backend needs: this module, one entry point in
``pyproject.toml`` and a test class that subclasses ``xbench.testing.BackendConformance``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import xbench
from torch import Tensor
from xbench import AttentionBackend, BackendSpec, default_scale, option


@dataclass
class SigmoidOptions:
    bias: float | None = option(
        None, help="added to every score before the sigmoid; null = -log(number of real keys)"
    )


def sigmoid_weights(
    q: Tensor,
    k: Tensor,
    key_padding_mask: Tensor | None,
    scale: float | None = None,
    bias: float | None = None,
) -> Tensor:
    """(B, H, Nq, Nk) weights σ(q·k·scale + b), 0 on padded keys."""
    scores = torch.matmul(q, k.transpose(-2, -1)) * default_scale(q, scale)
    if bias is None:
        real = k.shape[-2] if key_padding_mask is None else key_padding_mask.sum(-1)
        # clamp: an item with no real key has all its weights masked to 0 below anyway
        count = torch.as_tensor(real, dtype=scores.dtype, device=scores.device).clamp_min(1)
        shift = -torch.log(count).reshape(-1, 1, 1, 1)
    else:
        shift = torch.as_tensor(bias, dtype=scores.dtype, device=scores.device)
    weights = torch.sigmoid(scores + shift)
    if key_padding_mask is None:
        return weights
    return weights.masked_fill(~key_padding_mask[:, None, None, :], 0.0)


class SigmoidAttention(AttentionBackend):
    """Materialises the weights (like ``naive``): the definition, not a fused kernel."""

    def __init__(self, bias: float | None = None) -> None:
        super().__init__()
        self.bias = bias

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> Tensor:
        return torch.matmul(self.attention_weights(q, k, v, key_padding_mask, scale), v)

    def attention_weights(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> Tensor:
        return sigmoid_weights(q, k, key_padding_mask, scale, self.bias)

    def describe(self) -> dict:
        bias = "-log(real keys)" if self.bias is None else self.bias
        return {"kernel": "matmul-sigmoid-matmul", "bias": bias}


def build_sigmoid(options: SigmoidOptions) -> SigmoidAttention:
    """Called once per decoder layer: each layer gets its own backend."""
    return SigmoidAttention(options.bias)


@xbench.hookimpl
def xbench_register_backends(register):
    register(
        BackendSpec(
            name="sigmoid",
            build=build_sigmoid,
            options=SigmoidOptions,
            exact=False,
            description="Sigmoid attention: sum_j sigmoid(q.k*scale + b) v_j, b = -log(n) "
            "(example plugin xbench-sigmoid).",
        )
    )

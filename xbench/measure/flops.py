"""Floating-point operations of one cross-attention call, by the FlashAttention convention
(:data:`~xbench.measure.types.FLOPS_CONVENTION`): dense-equivalent, also for backends that
skip work, so TFLOP/s compare like with like."""

from __future__ import annotations

from xbench.measure.types import FLOPS_CONVENTION, AttentionShape, Flops

BACKWARD_FLOPS_FACTOR = 3.5  # forward + backward over forward, FlashAttention's convention


def attention_flops(shape: AttentionShape) -> Flops:
    """FLOPs of one call at ``shape``: forward = 4·B·H·Nq·Nk·D, ``fwd+bwd`` = 3.5× that."""
    forward = 4 * shape.batch * shape.heads * shape.nq * shape.nk * shape.head_dim
    count = int(forward * BACKWARD_FLOPS_FACTOR) if shape.passes == "fwd+bwd" else forward
    return Flops(count=count, convention=FLOPS_CONVENTION)

"""The one way xbench builds the inputs of a measured cross-attention call: q, k, v of an
:class:`~xbench.measure.types.AttentionShape`, its key padding mask, several input sets to
cycle through (so a small shape cannot sit in cache and look fast) and, for ``fwd+bwd``,
inputs that require gradients and the output gradient."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from xbench.measure.types import AttentionShape

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` → ``"bfloat16"`` (how shapes and records name dtypes)."""
    return str(dtype).removeprefix("torch.")


def input_bytes(shape: AttentionShape) -> int:
    """Bytes of q, k, v and the output: what any kernel must at least read and write."""
    element = DTYPES[shape.dtype].itemsize
    elements = shape.batch * shape.heads * shape.head_dim * 2 * (shape.nq + shape.nk)
    return elements * element


def kv_bytes(shape: AttentionShape) -> int:
    """Bytes of k and v: what an exact decode step must read, whatever Nq."""
    return DTYPES[shape.dtype].itemsize * shape.batch * shape.heads * shape.nk * 2 * shape.head_dim


def padded_share(mask: torch.Tensor | None) -> float | None:
    """The share of keys a (B, Nk) mask hides, rounded for records; None without a mask."""
    if mask is None:
        return None
    return round(1.0 - mask.float().mean().item(), 4)


def lengths_mask(
    lengths: Sequence[int] | torch.Tensor, nk: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(B, Nk) bool key padding mask whose item b has its first ``lengths[b]`` keys real."""
    lengths = torch.as_tensor(lengths, device=device)
    return torch.arange(nk, device=device)[None, :] < lengths[:, None]


def padding_mask(
    batch: int, nk: int, padded_fraction: float | None, device: torch.device | str = "cpu"
) -> torch.Tensor | None:
    """(batch, nk) bool mask, True = a real key, real keys first; None when no mask is asked.

    The padded share of item ``i`` rises evenly across the batch around ``padded_fraction``
    (by ``s = min(f, 1 - f)`` either side), so the lengths are ragged as in a padded batch of
    real sequences while the mean padded share stays ``f``: at ``f ≤ 0.5`` the first item is
    the batch's full-length one, above it the last item is padding only.
    """
    if padded_fraction is None:
        return None
    if not 0.0 <= padded_fraction <= 1.0:
        raise ValueError(f"padded_fraction={padded_fraction!r} must lie in [0, 1]")
    spread = min(padded_fraction, 1.0 - padded_fraction)
    places = [item / (batch - 1) if batch > 1 else 0.5 for item in range(batch)]
    shares = [padded_fraction + spread * (2 * place - 1) for place in places]
    return lengths_mask([nk - round(share * nk) for share in shares], nk, device)


@dataclass
class AttentionInputs:
    """Input sets ``(q, k, v)`` of one shape, the shared mask and the output gradient."""

    shape: AttentionShape
    sets: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    mask: torch.Tensor | None
    grad_out: torch.Tensor | None
    _cycle: itertools.cycle = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._cycle = itertools.cycle(self.sets)

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The next input set, in rotation."""
        return next(self._cycle)


def make_inputs(
    shape: AttentionShape,
    sets: int = 1,
    seed: int = 0,
    budget_bytes: float | None = None,
    mask: torch.Tensor | None = None,
) -> AttentionInputs:
    """``sets`` random input sets drawn on the shape's device (fewer when they would pass
    ``budget_bytes``, never none); they require gradients when ``shape.passes`` is ``fwd+bwd``.
    ``mask`` (B, Nk), e.g. a real batch's padding, replaces the shape's drawn mask."""
    device, dtype = torch.device(shape.device), DTYPES[shape.dtype]
    grad = shape.passes == "fwd+bwd"
    if budget_bytes is not None:
        sets = min(sets, int(budget_bytes // max(input_bytes(shape), 1)))
    generator = torch.Generator(device=device).manual_seed(seed)

    def tensor(n: int) -> torch.Tensor:
        size = (shape.batch, shape.heads, n, shape.head_dim)
        x = torch.randn(size, generator=generator, device=device)  # drawn where it is used
        return x.to(dtype).requires_grad_(grad)

    drawn = [(tensor(shape.nq), tensor(shape.nk), tensor(shape.nk)) for _ in range(max(1, sets))]
    return AttentionInputs(
        shape=shape,
        sets=drawn,
        mask=(
            padding_mask(shape.batch, shape.nk, shape.padded_fraction, device)
            if mask is None
            else mask.to(device=device, dtype=torch.bool)
        ),
        grad_out=tensor(shape.nq).detach() if grad else None,
    )

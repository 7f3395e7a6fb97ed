"""``linear``: kernelized linear attention, never materialising the Nq×Nk score matrix.

Softmax's ``exp(q·k)`` is replaced by a feature-map dot product ``φ(q)ᵀφ(k)``, so the key
side can be summed once and reused by every query::

    out_i = φ(q_i)ᵀ S / max(φ(q_i)ᵀ z, eps),   S = Σ_j m_j φ(k_j) v_jᵀ,   z = Σ_j m_j φ(k_j)

with ``m_j`` the key padding mask. That costs O((Nq + Nk)·F·Dv) time and O((Nq + Nk)·F)
memory for F features. ``prepare`` folds the key side into a :class:`LinearMemory` once per
source (S, z and favor's ω), so every ``attend`` — a whole target or one decode step — costs
O(F·Dv) per query whatever Nk. ``forward`` is ``attend(q, prepare(k, v, mask, scale))``.
Feature maps:

- ``elu``: φ(x) = elu(x) + 1 (Katharopoulos et al., 2020). Positive, deterministic, F = D.
- ``favor``: Performer's FAVOR+ positive orthogonal random features,
  φ(x) = exp(ωᵀx' − |x'|²/2) / sqrt(F) with x' = x·sqrt(scale), an unbiased estimator of
  the softmax kernel: E[φ(q)ᵀφ(k)] = exp(q·k·scale).

favor computes exp only after shifting the logits by a max (per row for queries, per
(batch, head) over all real keys and features for keys); the shifts cancel in the ratio.
``eps`` is a floor of the normaliser, not an addend, so the weights of a row still sum to
one whatever the shifts did to the normaliser's scale.

A batch item with no real key has S = z = 0 and returns zeros. Half-precision inputs are
accumulated in float32 and the output is returned in the input dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

import xbench
from xbench.api.backend import (
    AttentionBackend,
    BackendSpec,
    PreparedMemory,
    QueryPositions,
    default_scale,
)
from xbench.api.options import option

FEATURE_MAPS = ("elu", "favor")


@dataclass
class LinearOptions:
    feature_map: str = option(
        "elu", help="φ: elu (elu(x)+1) or favor (Performer random features)", choices=FEATURE_MAPS
    )
    num_features: int = option(64, help="favor: number of random features", min=1)
    redraw: bool = option(False, help="favor: draw new features at every training forward")
    seed: int = option(0, help="favor: seed of the random features")
    eps: float = option(1e-6, help="floor of the normaliser φ(q)ᵀΣφ(k)", min=0.0)


def orthogonal_random_features(num: int, dim: int, generator: torch.Generator) -> Tensor:
    """(num, dim) rows ω: orthonormal within each block of ``dim`` rows, norms chi(dim).

    Orthogonal rows lower the estimator's variance against i.i.d. Gaussian rows; rescaling
    each by the norm of a fresh Gaussian vector keeps every row marginally N(0, I).
    """
    blocks = []
    for start in range(0, num, dim):
        gaussian = torch.randn(dim, dim, generator=generator)
        q, r = torch.linalg.qr(gaussian)
        q = q * torch.sign(torch.diagonal(r))  # sign fix: uniformly (Haar) distributed
        blocks.append(q.T[: min(dim, num - start)])
    norms = torch.randn(num, dim, generator=generator).norm(dim=1, keepdim=True)
    return torch.cat(blocks) * norms


@dataclass(frozen=True, kw_only=True)
class LinearMemory(PreparedMemory):
    """One source's folded key side: all a query needs, in the accumulation dtype.

    ``state`` is S = Σ_j m_j φ(k_j) v_jᵀ (B, H, F, Dv), ``normaliser`` is z = Σ_j m_j φ(k_j)
    (B, H, F), and ``omega`` favor's (F, D) projection the keys were mapped with (None for
    elu), so every query of the source uses the same features even if training redraws.
    """

    state: Tensor
    normaliser: Tensor
    omega: Tensor | None = None

    def select(self, index: Tensor) -> LinearMemory:
        """Batch items ``index``; ω is shared by the batch, so it is kept whole."""
        batch_first = PreparedMemory.select(replace(self, omega=None), index)
        return replace(batch_first, omega=self.omega)


class LinearAttention(AttentionBackend):
    """Linear attention with an ``elu`` or ``favor`` feature map (see the module doc)."""

    def __init__(
        self,
        feature_map: str = "elu",
        num_features: int = 64,
        redraw: bool = False,
        seed: int = 0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if feature_map not in FEATURE_MAPS:
            raise ValueError(f"feature_map={feature_map!r}; choose one of {FEATURE_MAPS}")
        self.feature_map = feature_map
        self.num_features = num_features
        self.redraw = redraw
        self.seed = seed
        self.eps = eps
        self.last_feature_dim: int | None = None
        self._generator = torch.Generator()
        # favor's ω, drawn on first use for the head dim it meets; saved with the model so a
        # checkpoint keeps the features it was trained with even when they were redrawn.
        self.register_buffer("features", None)

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> Tensor:
        """``scale`` defaults to 1/sqrt(D); favor uses it, elu has no temperature to set."""
        return self.attend(q, self.prepare(k, v, key_padding_mask, scale))

    def prepare(
        self,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> LinearMemory:
        """Fold the keys into S and z, once per source (favor's ω is drawn here, if at all)."""
        omega = self._projection(k.shape[-1], k.device) if self.feature_map == "favor" else None
        phi_k = self._key_features(k, key_padding_mask, scale, omega)
        state = torch.matmul(phi_k.transpose(-2, -1), v.to(phi_k.dtype))  # (B, H, F, Dv)
        normaliser = phi_k.sum(dim=-2)  # (B, H, F)
        return LinearMemory(
            k, v, key_padding_mask, scale, state=state, normaliser=normaliser, omega=omega
        )

    def attend(
        self, q: Tensor, memory: LinearMemory, positions: QueryPositions | None = None
    ) -> Tensor:
        """φ(q)ᵀS / max(φ(q)ᵀz, eps) against this backend's :meth:`prepare`: reads S, z and ω
        only, never the Nk keys. Linear attention has no positions to honour."""
        phi_q = self._query_features(q, memory)
        normaliser = torch.matmul(phi_q, memory.normaliser.unsqueeze(-1))  # (B, H, Nq, 1)
        return (torch.matmul(phi_q, memory.state) / self._safe(normaliser)).to(q.dtype)

    def attend_weights(
        self, q: Tensor, memory: LinearMemory, positions: QueryPositions | None = None
    ) -> Tensor:
        """Dense normalised φ(q)φ(k)ᵀ with the memory's features (small inputs only)."""
        phi_q = self._query_features(q, memory)
        phi_k = self._key_features(memory.k, memory.key_padding_mask, memory.scale, memory.omega)
        scores = torch.matmul(phi_q, phi_k.transpose(-2, -1))
        return (scores / self._safe(scores.sum(dim=-1, keepdim=True))).to(q.dtype)

    def attention_weights(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> Tensor:
        """The weights forward applies implicitly, densely (small inputs)."""
        return self.attend_weights(q, self.prepare(k, v, key_padding_mask, scale))

    def supports(self, q, k, v, key_padding_mask=None) -> str | None:
        if not all(t.is_floating_point() for t in (q, k, v)):
            return "linear attention needs floating-point q, k and v"
        return None

    def describe(self) -> dict:
        features = self.num_features if self.feature_map == "favor" else self.last_feature_dim
        return {"kernel": "linear", "feature_map": self.feature_map, "num_features": features}

    def _safe(self, normaliser: Tensor) -> Tensor:
        """max(normaliser, eps), with 1 where it is 0 (no real key, or underflow with eps=0):
        the numerator is 0 there too, so the output is 0 rather than 0/0."""
        normaliser = normaliser.clamp_min(self.eps)
        return torch.where(normaliser > 0, normaliser, torch.ones_like(normaliser))

    def _key_features(
        self, k: Tensor, key_padding_mask: Tensor | None, scale: float | None, omega: Tensor | None
    ) -> Tensor:
        """φ(k) in the accumulation dtype; padded keys have all-zero features."""
        k = k.to(_accumulation_dtype(k.dtype))
        keep = None if key_padding_mask is None else key_padding_mask[:, None, :, None]
        if omega is None:
            self.last_feature_dim = k.shape[-1]
            phi_k = F.elu(k) + 1
            return phi_k if keep is None else phi_k.masked_fill(~keep, 0.0)
        logits = _favor_logits(k * _favor_root(k, scale), omega.to(k.dtype))
        if keep is not None:
            logits = logits.masked_fill(~keep, float("-inf"))
        # One shift per (batch, head) over all keys and features: it cancels in the ratio.
        return _favor_features(logits, dims=(-2, -1))

    def _query_features(self, q: Tensor, memory: LinearMemory) -> Tensor:
        """φ(q) in the memory's dtype, with the features its keys were mapped with."""
        q = q.to(memory.state.dtype)
        if memory.omega is None:
            return F.elu(q) + 1
        logits = _favor_logits(q * _favor_root(q, memory.scale), memory.omega.to(q.dtype))
        return _favor_features(logits, dims=(-1,))

    def _projection(self, head_dim: int, device: torch.device) -> Tensor:
        """ω for this head dim: seeded on first use, redrawn per training call if asked."""
        stale = self.features is None or self.features.shape[1] != head_dim
        if stale:
            self._generator.manual_seed(self.seed)
        if stale or (self.redraw and self.training):
            self.features = orthogonal_random_features(
                self.num_features, head_dim, self._generator
            ).to(device)
        return self.features.to(device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The buffer is None until first use; give it a shape so saved features load into it.
        saved = state_dict.get(prefix + "features")
        if saved is not None and (self.features is None or self.features.shape != saved.shape):
            self.features = torch.empty_like(saved)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half-precision inputs, the input dtype otherwise."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _favor_root(x: Tensor, scale: float | None) -> float:
    """sqrt(scale): favor maps x·sqrt(scale), so φ(q)ᵀφ(k) estimates exp(q·k·scale)."""
    scale = default_scale(x, scale)
    if scale < 0:
        raise ValueError(f"favor needs scale >= 0, got {scale}")
    return math.sqrt(scale)


def _favor_logits(x: Tensor, omega: Tensor) -> Tensor:
    """ωᵀx − |x|²/2 for every row of x: the log of a positive random feature (times sqrt F)."""
    return torch.matmul(x, omega.T) - 0.5 * x.pow(2).sum(dim=-1, keepdim=True)


def _favor_features(logits: Tensor, dims: tuple[int, ...]) -> Tensor:
    """exp(logits − max)/sqrt(F), the max over ``dims`` (not differentiated: it cancels).

    Queries shift per row, keys per (batch, head); either shift scales numerator and
    normaliser alike. Fully masked (all −inf) groups shift by 0 and give zero features.
    """
    shift = logits.detach().amax(dim=dims, keepdim=True)
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    return torch.exp(logits - shift) / math.sqrt(logits.shape[-1])


def build_linear(options: LinearOptions) -> LinearAttention:
    return LinearAttention(
        feature_map=options.feature_map,
        num_features=options.num_features,
        redraw=options.redraw,
        seed=options.seed,
        eps=options.eps,
    )


@xbench.hookimpl
def xbench_register_backends(register):
    register(
        BackendSpec(
            name="linear",
            build=build_linear,
            options=LinearOptions,
            exact=False,
            description="Kernelized linear attention (elu+1 or FAVOR+ features), O(N) memory.",
        )
    )

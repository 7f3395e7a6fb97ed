"""The cross-attention layers of a Hugging Face model, each with its own xbench backend.

transformers hands an attention function only the calling module and its tensors, while an
xbench backend needs more: one instance per decoder layer, its memory prepared once per
source and reused by every decode step, and the decoder columns its queries sit at. This
module finds a model's cross-attention modules and attaches a :class:`CrossAttentionLayer`
that keeps all of that; every other module is marked so its calls go to SDPA. It imports no
transformers: the cache is read through its ``get_seq_length`` method.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from xbench.api.backend import AttentionBackend, PreparedMemory, QueryPositions
from xbench.api.errors import UserError

#: What an encoder-decoder in transformers calls the module that attends to the encoder
#: (BART, Marian, M2M100, Pegasus, Whisper: ``encoder_attn``; T5: ``EncDecAttention``;
#: BERT-style decoders: ``crossattention``; others ``cross_attn``/``cross_attention``).
CROSS_ATTENTION_NAMES = frozenset(
    {"encoder_attn", "EncDecAttention", "crossattention", "cross_attn", "cross_attention"}
)
#: The attribute every module of a swapped model carries: its :class:`CrossAttentionLayer`,
#: or a :class:`SelfAttention` marker for the modules whose attention stays SDPA.
ROLE_ATTRIBUTE = "xbench_attention"


class UnsupportedAttention(UserError):
    """A cross-attention call the backend cannot run as the model asks (an additive bias,
    a mask that varies by query row, attention dropout, or the backend's own ``supports``).
    Raised instead of running something else: a swapped model never silently differs."""

    def __init__(self, backend: str, layer: str, reason: str) -> None:
        super().__init__(f"backend {backend!r} cannot run cross-attention {layer}: {reason}")
        self.backend = backend
        self.layer = layer
        self.reason = reason


@dataclass(frozen=True)
class SelfAttention:
    """The marker of a module whose attention calls go to transformers' SDPA."""

    backend_name: str


@dataclass(frozen=True, eq=False)
class _Source:
    """What a prepared memory was built from. Holding the tensors keeps their ids from
    being reused by a later source; the versions catch an in-place change."""

    k: Tensor
    v: Tensor
    k_version: int
    v_version: int
    key_padding_mask: Tensor | None
    scale: float | None
    groups: int

    def same_as(self, other: _Source) -> bool:
        """The same source: the same tensors, unchanged, with an equal mask and scale."""
        if self.k is not other.k or self.v is not other.v:
            return False
        kept = (self.k_version, self.v_version, self.scale, self.groups)
        if kept != (other.k_version, other.v_version, other.scale, other.groups):
            return False
        mine, theirs = self.key_padding_mask, other.key_padding_mask
        if mine is None or theirs is None:
            return mine is theirs
        return torch.equal(mine, theirs)


class CrossAttentionLayer:
    """One cross-attention module's backend, its prepared memory and its query positions.

    The memory is kept for the source it was prepared from: the same key and value tensors
    (transformers hands back the cached ones at every step after the first), unchanged in
    place, with the same mask and scale. Anything else, a new source, prepares again.
    """

    def __init__(self, name: str, backend_name: str, backend: AttentionBackend, columns: int):
        self.name = name
        self.backend_name = backend_name
        self.backend = backend
        self.columns = columns
        self._seen: int | None = None
        self._layer_idx = 0
        self._source: _Source | None = None
        self._memory: PreparedMemory | None = None
        self._hook: torch.utils.hooks.RemovableHandle | None = None

    def attach(self, module: nn.Module) -> None:
        """Watch ``module``'s calls for the decoder columns already seen (its cache)."""
        self.detach()
        self._hook = module.register_forward_pre_hook(self._before_call, with_kwargs=True)
        self._layer_idx = getattr(module, "layer_idx", None) or 0

    def detach(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def unsupported(self, reason: str) -> UnsupportedAttention:
        return UnsupportedAttention(self.backend_name, self.name, reason)

    def attend(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None,
        scale: float | None,
        groups: int = 1,
    ) -> Tensor:
        """``(B, H, Nq, Dv)`` of the backend on this layer's memory of ``k, v``.

        ``groups`` > 1 repeats each key/value head for that many query heads (grouped-query
        attention); the memory is still keyed by the tensors the model passed.
        """
        memory = self._memory_for(q, k, v, key_padding_mask, scale, groups)
        nq = q.shape[2]
        start = 0 if self._seen is None else max(self._seen - nq, 0)
        positions = QueryPositions(start=start, total=max(self.columns, start + nq))
        return self.backend.attend(q, memory, positions)

    def _memory_for(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None,
        scale: float | None,
        groups: int,
    ) -> PreparedMemory:
        source = _Source(k, v, k._version, v._version, key_padding_mask, scale, groups)
        if self._memory is not None and self._source is not None and self._source.same_as(source):
            return self._memory
        self._on(q.device)
        if groups > 1:
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        reason = self.backend.supports(q, k, v, key_padding_mask)
        if reason is not None:
            raise self.unsupported(reason)
        self._memory = self.backend.prepare(k, v, key_padding_mask, scale)
        self._source = source
        return self._memory

    def _on(self, device: torch.device) -> None:
        """Move the backend's own parameters and buffers to the queries' device (the model
        may have been moved after the swap; the backend is not one of its submodules)."""
        state = next(iter(self.backend.state_dict().values()), None)
        if state is not None and state.device != device:
            self.backend.to(device)

    def _before_call(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        # Self-attention runs first in every decoder layer and has already added this
        # call's tokens to the cache: what it holds now is past columns + this call's rows.
        cache = next((a for a in (*args, *kwargs.values()) if hasattr(a, "get_seq_length")), None)
        self._seen = None if cache is None else int(cache.get_seq_length(self._layer_idx))


def cross_attention_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """The outermost modules named as cross-attention (:data:`CROSS_ATTENTION_NAMES`) or
    flagged ``is_cross_attention``, in model order."""
    inside: str | None = None
    for name, module in model.named_modules():
        if inside is not None and name.startswith(inside + "."):
            continue
        leaf = name.rpartition(".")[2]
        if leaf in CROSS_ATTENTION_NAMES or getattr(module, "is_cross_attention", False) is True:
            inside = name
            yield name, module


def mark(model: nn.Module, layers: dict[str, CrossAttentionLayer], backend_name: str) -> None:
    """Give every module of ``model`` its role: each cross-attention module and everything
    inside it (the submodule that calls the attention function may be nested) its layer,
    every other module the SDPA marker."""
    for module in model.modules():
        previous = getattr(module, ROLE_ATTRIBUTE, None)
        if isinstance(previous, CrossAttentionLayer):
            previous.detach()
        module.__dict__[ROLE_ATTRIBUTE] = SelfAttention(backend_name)
    for name, layer in layers.items():
        owner = model.get_submodule(name)
        layer.attach(owner)
        for module in owner.modules():
            module.__dict__[ROLE_ATTRIBUTE] = layer

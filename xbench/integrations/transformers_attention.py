"""xbench backends as transformers attention functions (``AttentionInterface``).

Each installed backend is registered as ``xbench_<backend>`` with SDPA's mask function under
the same name: transformers builds masks only for implementations that have one, so without
it the encoder padding mask would be silently dropped. SDPA's masks also keep the
self-attention calls, which go to transformers' own SDPA function, exactly as in an SDPA
model. A cross-attention call goes to its module's :class:`CrossAttentionLayer`, with the
encoder padding mask turned back into xbench's ``key_padding_mask``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from xbench.api.errors import UserError
from xbench.integrations.transformers_layers import (
    ROLE_ATTRIBUTE,
    CrossAttentionLayer,
    SelfAttention,
)

PREFIX = "xbench_"
#: Words transformers reads in an implementation's name as one of its own kernels (a name
#: with "flash" in it loads a flash-attention kernel); a backend's name spells them in
#: capitals, which no backend name has (they are lower-case), so the mapping stays one-to-one.
KERNEL_WORDS = ("flash", "sdpa", "flex")


def implementation_name(backend: str) -> str:
    """The ``attn_implementation`` a backend is registered under: ``xbench_<backend>``, with
    :data:`KERNEL_WORDS` in capitals (``xbench_naive``, ``xbench_FLASH``)."""
    for word in KERNEL_WORDS:
        backend = backend.replace(word, word.upper())
    return PREFIX + backend


def register_backends(names: Iterable[str]) -> list[str]:
    """Register each backend's attention function and mask function; returns their names.
    Registering again replaces the same functions (it is idempotent)."""
    registered = []
    for backend in names:
        name = implementation_name(backend)
        AttentionInterface.register(name, _attention_function(backend))
        AttentionMaskInterface.register(name, sdpa_mask)
        registered.append(name)
    return registered


def _attention_function(backend: str) -> Callable[..., tuple[Tensor, None]]:
    def attention(
        module: nn.Module,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        attention_mask: Tensor | None,
        dropout: float = 0.0,
        scaling: float | None = None,
        position_bias: Tensor | None = None,
        **kwargs,
    ) -> tuple[Tensor, None]:
        role = _role(module, backend)
        if isinstance(role, SelfAttention):
            return sdpa_attention_forward(
                module,
                query,
                key,
                value,
                attention_mask,
                dropout=dropout,
                scaling=scaling,
                position_bias=position_bias,
                **kwargs,
            )
        if dropout > 0.0:
            raise role.unsupported(
                f"attention dropout {dropout} in training mode; xbench backends apply none "
                "(call model.eval() or set the config's attention dropout to 0)"
            )
        if position_bias is not None and bool(position_bias.any()):
            raise role.unsupported(
                "the model adds a nonzero position_bias to the scores; xbench backends take "
                "no additive bias"
            )
        batch, _, nq, _ = query.shape
        mask = key_padding_mask(role, attention_mask, batch, nq, key.shape[2])
        groups = getattr(module, "num_key_value_groups", 1)
        out = role.attend(query, key, value, mask, scaling, groups)
        return out.transpose(1, 2).contiguous(), None

    attention.__name__ = attention.__qualname__ = f"xbench_{backend}_attention"
    return attention


def _role(module: nn.Module, backend: str) -> CrossAttentionLayer | SelfAttention:
    role = getattr(module, ROLE_ATTRIBUTE, None)
    if role is None:
        raise UserError(
            f"attn_implementation {implementation_name(backend)!r} runs only on a model "
            f"prepared by xbench.integrations.transformers.use_backend(model, {backend!r})"
        )
    if role.backend_name != backend:
        raise UserError(
            f"attn_implementation {implementation_name(backend)!r} on a model swapped to "
            f"{role.backend_name!r}; change backends with use_backend only"
        )
    return role


def key_padding_mask(
    layer: CrossAttentionLayer, mask: Tensor | None, batch: int, nq: int, nk: int
) -> Tensor | None:
    """The ``(B, Nk)`` real-key mask of an SDPA cross-attention mask, or None without one.

    SDPA's masks are boolean (True = attend) or additive (0 = attend, the dtype's minimum or
    −inf = not). A padding mask is the same for every query row and head; one that is not,
    or an additive mask with other values, is a pattern the backend cannot take.
    """
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        keep = mask == 0
        if not bool((keep | (mask <= torch.finfo(mask.dtype).min)).all()):
            raise layer.unsupported("an additive cross-attention mask that is not 0 / -inf")
        mask = keep
    mask = torch.broadcast_to(mask, (batch, mask.shape[1], nq, nk))
    rows = mask[:, :1, :1, :]
    if not bool((mask == rows).all()):
        raise layer.unsupported("a cross-attention mask that differs between query rows")
    return rows[:, 0, 0, :]

"""Swap an xbench backend into a Hugging Face transformers encoder-decoder.

    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    use_backend(model, "sparse", block_size=16)
    model.generate(**batch)

Only cross-attention is swapped: every module that attends to the encoder gets its own
backend instance (as each decoder layer of xbench's own model does), with the encoder
padding mask, the model's scaling, its memory prepared once per source and the decoder
columns its queries sit at. Encoder and decoder self-attention keep transformers' SDPA, so
a difference from the original model comes from cross-attention alone. A call the backend
cannot run as the model asks raises :class:`UnsupportedAttention` naming the reason.

transformers is an optional dependency (``pip install 'xbench[transformers]'``); this module
imports without it and says so when used.
"""

from __future__ import annotations

from typing import Any

from xbench.api.errors import UserError
from xbench.api.options import build_options
from xbench.integrations.transformers_layers import (
    ROLE_ATTRIBUTE,
    CrossAttentionLayer,
    UnsupportedAttention,
    cross_attention_modules,
    mark,
)
from xbench.registry import Registry, get_registry

__all__ = [
    "CrossAttentionLayer",
    "UnsupportedAttention",
    "register_backends",
    "swapped_layers",
    "use_backend",
]

INSTALL_HINT = "pip install 'xbench[transformers]'"
#: What ``generate`` stops at when neither the call nor the model sets ``max_length``.
GENERATE_MAX_LENGTH = 20


def use_backend(
    model: Any,
    backend: str,
    *,
    columns: int | None = None,
    registry: Registry | None = None,
    **options: Any,
) -> Any:
    """Route ``model``'s cross-attention through ``backend`` built with ``options``; returns
    ``model`` itself. Calling it again swaps in another backend.

    Options are validated like ``backend.<option>=`` on the command line (one-line
    :class:`UserError`) before the model is touched. ``columns`` is the decoder length a
    position-dependent backend (``sparse``) lays its queries out for, ``QueryPositions.total``:
    by default the model's ``generation_config.max_length``; pass the ``max_length`` you
    generate with. ``registry`` is for backends registered in-process
    (``xbench.registry.load_registry(extra_plugins=...)``).
    """
    attention = _transformers_attention()
    registry = registry or get_registry()
    spec = registry.backend(backend)
    built = build_options(spec.options, options, "backend")
    found = list(cross_attention_modules(model))
    if not found:
        raise UserError(
            f"{type(model).__name__} has no cross-attention module to swap (looked for "
            "submodules named encoder_attn, EncDecAttention, crossattention, cross_attn or "
            "cross_attention)"
        )
    columns = _columns(model) if columns is None else columns
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise UserError(f"columns={columns!r}: must be a whole number of decoder columns >= 1")
    register_backends(registry)
    layers = {
        name: CrossAttentionLayer(name, backend, spec.build(built), columns) for name, _ in found
    }
    mark(model, layers, backend)
    name = attention.implementation_name(backend)
    model.set_attn_implementation(name)
    if model.config._attn_implementation != name:  # transformers only warns
        raise UserError(
            f"{type(model).__name__} does not route its attention through transformers' "
            "AttentionInterface, so no backend can be swapped in"
        )
    return model


def swapped_layers(model: Any) -> list[CrossAttentionLayer]:
    """The cross-attention layers :func:`use_backend` gave ``model``, in model order: each
    has its own backend (``layer.backend``, e.g. the last one's ``describe()``)."""
    layers: list[CrossAttentionLayer] = []
    for module in model.modules():
        layer = getattr(module, ROLE_ATTRIBUTE, None)
        if isinstance(layer, CrossAttentionLayer) and layer not in layers:
            layers.append(layer)
    return layers


def register_backends(registry: Registry | None = None) -> list[str]:
    """Register every installed backend (or ``registry``'s) with transformers'
    ``AttentionInterface`` and ``AttentionMaskInterface`` as ``xbench_<backend>`` (transformers'
    kernel words in capitals: ``xbench_FLASH``); returns the names. They run only on a model
    :func:`use_backend` prepared."""
    attention = _transformers_attention()
    return attention.register_backends((registry or get_registry()).backends)


def require_transformers(user: str = "xbench.integrations.transformers") -> Any:
    """The ``transformers`` module; without it a one-line :class:`UserError` saying that
    ``user`` needs it and how to install it (the one place xbench imports it lazily)."""
    try:
        import transformers
    except ImportError:
        raise UserError(f"{user} needs transformers: {INSTALL_HINT}") from None
    return transformers


def _transformers_attention() -> Any:
    """The attention-function module, once transformers is known to be installed."""
    require_transformers()
    from xbench.integrations import transformers_attention

    return transformers_attention


def _columns(model: Any) -> int:
    """The longest output ``generate`` makes by default: the model's ``max_length``, else its
    decoder's position limit, else transformers' own default."""
    generation = getattr(model, "generation_config", None)
    if generation is not None and generation.max_length:
        return int(generation.max_length)
    config = model.config
    for key in ("max_target_positions", "max_position_embeddings", "n_positions"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    return GENERATE_MAX_LENGTH

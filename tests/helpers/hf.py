"""Tiny Hugging Face models for the integration tests: one place for their shared size."""

from __future__ import annotations

import torch

#: Two layers each side, width 32, four heads: every tiny model the tests build.
TINY_SIZE = {
    "d_model": 32,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
}


def tiny_marian(std: float, **config):
    """A tiny MarianMTModel whose matrices are drawn with ``std``: Marian's own init leaves
    cross-attention almost without effect, larger weights make outputs follow it."""
    import transformers

    marian = transformers.MarianConfig(
        **TINY_SIZE, max_position_embeddings=64, forced_eos_token_id=None, **config
    )
    model = transformers.MarianMTModel(marian)
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() == 2:
                weight.normal_(std=std)
    return model

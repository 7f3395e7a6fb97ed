"""The encoder-decoder every run trains: task frontend → encoder → decoder whose
cross-attention is the backend under test.

Self-attention (encoder, and the decoder's causal attention) always uses the same fixed
SDPA call, so differences between runs come from the cross-attention backend alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xbench.api.backend import AttentionBackend
from xbench.config.settings import ModelSettings


def _split_heads(x: Tensor, heads: int) -> Tensor:
    batch, length, dim = x.shape
    return x.view(batch, length, heads, dim // heads).transpose(1, 2)


def _merge_heads(x: Tensor) -> Tensor:
    batch, heads, length, dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * dim)


def rotary(x: Tensor) -> Tensor:
    """Rotary position embedding of (B, H, N, D) queries or keys.

    Relative positions let a token find a neighbour at a fixed offset (a value and the name
    it belongs to) in a few steps, which absolute codes make slow to learn.
    """
    length, dim = x.shape[-2], x.shape[-1]
    half = dim // 2
    freq = torch.exp(
        torch.arange(half, device=x.device, dtype=torch.float32) * (-math.log(10000.0) / half)
    )
    angle = torch.arange(length, device=x.device, dtype=torch.float32)[:, None] * freq
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


class SelfAttention(nn.Module):
    """Fixed self-attention: one SDPA call with rotary positions, padding mask or causal."""

    def __init__(self, config: ModelSettings) -> None:
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)

    def forward(
        self, x: Tensor, key_padding_mask: Tensor | None = None, causal: bool = False
    ) -> Tensor:
        q, k, v = (_split_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        q, k = rotary(q), rotary(k)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=_self_mask(key_padding_mask, causal, x.shape[1]),
            is_causal=causal and key_padding_mask is None,
        )
        return self.out(_merge_heads(out))


def _self_mask(key_padding_mask: Tensor | None, causal: bool, length: int) -> Tensor | None:
    """Boolean (B, 1, N, N) mask; every token may see itself, so no row is ever empty."""
    if key_padding_mask is None:
        return None
    allowed = key_padding_mask[:, None, None, :]
    if causal:
        allowed = (
            allowed & torch.ones(length, length, dtype=torch.bool, device=allowed.device).tril()
        )
    eye = torch.eye(length, dtype=torch.bool, device=allowed.device)
    return allowed | eye


class CrossAttention(nn.Module):
    """Projections around the backend; keys/values of the memory are computed once."""

    def __init__(self, config: ModelSettings, backend: AttentionBackend) -> None:
        super().__init__()
        self.heads = config.heads
        self.q = nn.Linear(config.d_model, config.d_model)
        self.kv = nn.Linear(config.d_model, 2 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)
        self.backend = backend

    def memory_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.kv(memory).chunk(2, dim=-1)
        return _split_heads(k, self.heads), _split_heads(v, self.heads)

    def queries(self, x: Tensor) -> Tensor:
        return _split_heads(self.q(x), self.heads)

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor], key_padding_mask: Tensor) -> Tensor:
        q = self.queries(x)
        return self.out(_merge_heads(self.backend(q, *kv, key_padding_mask=key_padding_mask)))


class ShortConv(nn.Module):
    """Depthwise causal convolution over the last ``kernel`` positions, added residually.

    It hands every token its neighbours (a value and the name a few words before it), which
    attention alone learns only after a long plateau; with it a tiny model learns lookup
    tasks within a CPU-minute. ``conv_kernel=0`` removes it. It never touches the
    cross-attention, so backends are compared on equal terms.
    """

    def __init__(self, config: ModelSettings) -> None:
        super().__init__()
        self.kernel = config.conv_kernel
        self.conv = (
            nn.Conv1d(config.d_model, config.d_model, self.kernel, groups=config.d_model)
            if self.kernel
            else None
        )

    def forward(self, x: Tensor, keep: Tensor | None = None) -> Tensor:
        if self.conv is None:
            return x
        if keep is not None:
            x = x * keep[..., None].to(x.dtype)  # padding contributes nothing
        padded = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))
        return x + self.conv(padded).transpose(1, 2)


def _ffn(config: ModelSettings) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(config.d_model, config.ffn_dim),
        nn.GELU(),
        nn.Linear(config.ffn_dim, config.d_model),
        nn.Dropout(config.dropout),
    )


class EncoderLayer(nn.Module):
    def __init__(self, config: ModelSettings) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(config.d_model), nn.LayerNorm(config.d_model)
        self.attention = SelfAttention(config)
        self.conv = ShortConv(config)
        self.ffn = _ffn(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, key_padding_mask: Tensor) -> Tensor:
        x = self.conv(x, key_padding_mask)
        x = x + self.dropout(self.attention(self.norm1(x), key_padding_mask))
        return x + self.ffn(self.norm2(x))


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelSettings, backend: AttentionBackend) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(config.d_model) for _ in range(3))
        self.self_attention = SelfAttention(config)
        self.cross_attention = CrossAttention(config, backend)
        self.conv = ShortConv(config)
        self.ffn = _ffn(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: Tensor,
        kv: tuple[Tensor, Tensor],
        key_padding_mask: Tensor,
        target_mask: Tensor | None = None,
    ) -> Tensor:
        x = self.conv(x, target_mask)
        x = x + self.dropout(self.self_attention(self.norms[0](x), target_mask, causal=True))
        x = x + self.dropout(self.cross_attention(self.norms[1](x), kv, key_padding_mask))
        return x + self.ffn(self.norms[2](x))


class EncoderDecoder(nn.Module):
    """Pre-norm Transformer; the target embedding is tied to the output projection and
    handed to the task's frontend, which may share it with the source.

    ``backend`` is a factory called once per decoder layer (e.g.
    ``functools.partial(spec.build, options)``, or a backend class): every layer's
    cross-attention gets its own instance, so a backend may keep per-layer state.
    """

    def __init__(
        self,
        config: ModelSettings,
        vocab_size: int,
        pad_id: int,
        frontend: Callable[[int, nn.Embedding], nn.Module],
        backend: Callable[[], AttentionBackend],
    ) -> None:
        super().__init__()
        if isinstance(backend, nn.Module):
            raise TypeError(
                "EncoderDecoder takes a backend factory (one instance per decoder layer), "
                f"not an instance: pass e.g. lambda: {type(backend).__name__}(...)"
            )
        self.config = config
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, config.d_model)
        nn.init.normal_(self.embedding.weight, std=config.d_model**-0.5)
        self.frontend = frontend(config.d_model, self.embedding)
        self.encoder = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))
        self.encoder_norm = nn.LayerNorm(config.d_model)
        self.decoder = nn.ModuleList(
            DecoderLayer(config, backend()) for _ in range(config.decoder_layers)
        )
        self.decoder_norm = nn.LayerNorm(config.d_model)

    @property
    def backends(self) -> list[AttentionBackend]:
        """The cross-attention backend of each decoder layer, first layer first."""
        return [layer.cross_attention.backend for layer in self.decoder]

    def encode(self, source) -> tuple[list[tuple[Tensor, Tensor]], Tensor]:
        """Per-decoder-layer cross-attention keys/values of the source, and its padding mask."""
        x, mask = self.frontend(source)
        for layer in self.encoder:
            x = layer(x, mask)
        memory = self.encoder_norm(x)
        return [layer.cross_attention.memory_kv(memory) for layer in self.decoder], mask

    def decode(
        self, target_in: Tensor, memory_kv, mask: Tensor, prompt: Tensor | None = None
    ) -> Tensor:
        """Logits (B, T, vocab) for teacher-forced target tokens after an optional prompt.

        ``prompt`` (B, P) is left-padded with ``pad_id``: decoder tokens that condition the
        answer (a question) but are not predicted. Positions are rotary (relative), so left
        padding changes nothing but the masked keys.
        """
        tokens = target_in if prompt is None else torch.cat([prompt, target_in], dim=1)
        target_mask = None if prompt is None else tokens != self.pad_id
        x = self.embedding(tokens) * math.sqrt(self.config.d_model)
        for layer, kv in zip(self.decoder, memory_kv, strict=True):
            x = layer(x, kv, mask, target_mask)
        logits = F.linear(self.decoder_norm(x), self.embedding.weight)
        return logits if prompt is None else logits[:, prompt.shape[1] :]

    def forward(self, source, target_in: Tensor, prompt: Tensor | None = None) -> Tensor:
        memory_kv, mask = self.encode(source)
        return self.decode(target_in, memory_kv, mask, prompt)

    def last_cross_attention_inputs(
        self, source, target_in: Tensor, prompt: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``q, k, v, key_padding_mask`` that the last decoder layer's cross-attention gets
        when ``target_in`` is teacher-forced; q covers ``target_in`` only (prompt dropped).

        For attention maps: a hook reads them off one ordinary forward pass, so the model's
        own code path is what is shown and training pays nothing for it.
        """
        captured: list[tuple[Tensor, ...]] = []

        def capture(module: CrossAttention, args: tuple) -> None:
            x, (k, v), mask = args
            captured.append((module.queries(x), k, v, mask))

        handle = self.decoder[-1].cross_attention.register_forward_pre_hook(capture)
        try:
            self(source, target_in, prompt)
        finally:
            handle.remove()
        q, k, v, mask = captured[0]
        return q[:, :, q.shape[2] - target_in.shape[1] :], k, v, mask

    @torch.no_grad()
    def generate(
        self, source, bos_id: int, eos_id: int, max_length: int, prompt: Tensor | None = None
    ) -> Tensor:
        """Greedy decoding: (B, ≤max_length) token ids after BOS, PAD after EOS."""
        memory_kv, mask = self.encode(source)
        batch = mask.shape[0]
        tokens = torch.full((batch, 1), bos_id, dtype=torch.long, device=mask.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=mask.device)
        for _ in range(max_length):
            next_token = self.decode(tokens, memory_kv, mask, prompt)[:, -1].argmax(-1)
            next_token = next_token.masked_fill(finished, self.pad_id)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)
            finished |= next_token == eos_id
            if bool(finished.all()):
                break
        return tokens[:, 1:]

"""The encoder-decoder every run trains: task frontend → encoder → decoder whose
cross-attention is the backend under test.

Self-attention (the encoder's, banded by ``encoder_window`` on long sources, and the
decoder's causal one) is the same fixed SDPA call in every run, so differences between runs
come from the cross-attention backend alone.

Each source's encoder output becomes one :class:`~xbench.api.backend.PreparedMemory` per
decoder layer (``backend.prepare``, once), and every cross-attention call is
``backend.attend`` with the queries' decoder columns: the teacher-forced pass and each
step of cached decoding alike, so both see the same attention for the same token.
Generation decodes incrementally (a :class:`DecodeState` keeps each layer's self-attention
keys/values and convolution inputs; a step computes only the new token), the way a
deployed decoder runs; ``generate(cache=False)`` re-runs the whole prefix at every step and
is kept as the reference the cached path must equal token for token.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xbench.api.backend import AttentionBackend, PreparedMemory, QueryPositions
from xbench.config.settings import ModelSettings
from xbench.run.windowed import windowed_attention


def _split_heads(x: Tensor, heads: int) -> Tensor:
    batch, length, dim = x.shape
    return x.view(batch, length, heads, dim // heads).transpose(1, 2)


def _merge_heads(x: Tensor) -> Tensor:
    batch, heads, length, dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * dim)


def rotary(x: Tensor, offset: int = 0) -> Tensor:
    """Rotary position embedding of (B, H, N, D) queries or keys at columns ``offset …``.

    Relative positions let a token find a neighbour at a fixed offset (a value and the name
    it belongs to) in a few steps, which absolute codes make slow to learn. A decode step
    rotates its one new row by its own column, so cached keys match the full pass.
    """
    length, dim = x.shape[-2], x.shape[-1]
    half = dim // 2
    freq = torch.exp(
        torch.arange(half, device=x.device, dtype=torch.float32) * (-math.log(10000.0) / half)
    )
    columns = torch.arange(offset, offset + length, device=x.device, dtype=torch.float32)
    angle = columns[:, None] * freq
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


@dataclass
class LayerCache:
    """What one decoder layer carries between decode steps: its self-attention keys and
    values of every column so far (rotated at their own columns) and the last
    ``conv_kernel - 1`` (masked) inputs of its convolution, (B, d_model, kernel - 1)."""

    keys: Tensor | None = None
    values: Tensor | None = None
    conv_inputs: Tensor | None = None

    @property
    def columns(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add the new columns' keys and values; returns all of them."""
        self.keys = k if self.keys is None else torch.cat([self.keys, k], dim=2)
        self.values = v if self.values is None else torch.cat([self.values, v], dim=2)
        return self.keys, self.values


class SelfAttention(nn.Module):
    """Fixed self-attention: one SDPA call with rotary positions, padding mask or causal.

    With a ``cache`` (causal decoding) ``x`` holds only the new columns: their keys and
    values join the cache and their queries attend to every cached column. A ``window``
    (the encoder's ``encoder_window``) limits non-causal attention to keys that close.
    """

    def __init__(self, config: ModelSettings, window: int = 0) -> None:
        super().__init__()
        self.heads = config.heads
        self.window = window
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)

    def forward(
        self,
        x: Tensor,
        key_padding_mask: Tensor | None = None,
        causal: bool = False,
        cache: LayerCache | None = None,
    ) -> Tensor:
        """``key_padding_mask`` covers every key: the cached columns and the new ones."""
        offset = 0 if cache is None else cache.columns
        q, k, v = (_split_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        q, k = rotary(q, offset), rotary(k, offset)
        if cache is not None:
            k, v = cache.append(k, v)
        if self.window and not causal:
            out = windowed_attention(q, k, v, key_padding_mask, self.window)
            return self.out(_merge_heads(out))
        mask = _self_mask(key_padding_mask, causal, x.shape[1], offset, x.device)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal and mask is None and offset == 0
        )
        return self.out(_merge_heads(out))


def _self_mask(
    key_padding_mask: Tensor | None,
    causal: bool,
    queries: int,
    offset: int = 0,
    device: torch.device | None = None,
) -> Tensor | None:
    """Boolean (B, 1, queries, offset + queries) mask of queries at columns ``offset …``;
    every token may see itself, so no row is ever empty. None when no mask is needed or
    SDPA's own ``is_causal`` (top-left aligned, right for ``offset == 0``) is the mask."""
    if key_padding_mask is None and (not causal or offset == 0 or queries == 1):
        return None
    rows = torch.arange(offset, offset + queries, device=device)[:, None]
    columns = torch.arange(offset + queries, device=device)[None, :]
    allowed = columns <= rows if causal else torch.ones_like(columns, dtype=torch.bool)
    if key_padding_mask is not None:
        allowed = key_padding_mask[:, None, None, :] & allowed
    return allowed | (columns == rows)


class CrossAttention(nn.Module):
    """Projections around the backend. The encoder memory's keys and values are projected
    and prepared by the backend once per source; every call then attends to that state."""

    def __init__(self, config: ModelSettings, backend: AttentionBackend) -> None:
        super().__init__()
        self.heads = config.heads
        self.q = nn.Linear(config.d_model, config.d_model)
        self.kv = nn.Linear(config.d_model, 2 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)
        self.backend = backend

    def prepare(self, memory: Tensor, key_padding_mask: Tensor) -> PreparedMemory:
        """This layer's prepared memory of the encoder output ``memory (B, Nk, d_model)``."""
        k, v = self.kv(memory).chunk(2, dim=-1)
        return self.backend.prepare(
            _split_heads(k, self.heads), _split_heads(v, self.heads), key_padding_mask
        )

    def queries(self, x: Tensor) -> Tensor:
        return _split_heads(self.q(x), self.heads)

    def forward(self, x: Tensor, memory: PreparedMemory, positions: QueryPositions) -> Tensor:
        """``x`` (B, N, d_model) holds decoder columns ``positions.start …``."""
        positions.check(x.shape[1])
        return self.out(_merge_heads(self.backend.attend(self.queries(x), memory, positions)))


class ShortConv(nn.Module):
    """Depthwise causal convolution over the last ``kernel`` positions, added residually.

    It hands every token its neighbours (a value and the name a few words before it), which
    attention alone learns only after a long plateau; with it a tiny model learns lookup
    tasks within a CPU-minute. ``conv_kernel=0`` removes it. It never touches the
    cross-attention, so backends are compared on equal terms. In cached decoding the
    previous ``kernel - 1`` inputs come from the ``cache`` instead of zero padding.
    """

    def __init__(self, config: ModelSettings) -> None:
        super().__init__()
        self.kernel = config.conv_kernel
        self.conv = (
            nn.Conv1d(config.d_model, config.d_model, self.kernel, groups=config.d_model)
            if self.kernel
            else None
        )

    def forward(
        self, x: Tensor, keep: Tensor | None = None, cache: LayerCache | None = None
    ) -> Tensor:
        if self.conv is None:
            return x
        if keep is not None:
            x = x * keep[..., None].to(x.dtype)  # padding contributes nothing
        history = None if cache is None else cache.conv_inputs
        if history is None:
            window = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))
        else:
            window = torch.cat([history, x.transpose(1, 2)], dim=2)
        if cache is not None:
            cache.conv_inputs = window[..., window.shape[2] - (self.kernel - 1) :]
        return x + self.conv(window).transpose(1, 2)


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
        self.attention = SelfAttention(config, window=config.encoder_window)
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
        memory: PreparedMemory,
        positions: QueryPositions,
        target_mask: Tensor | None = None,
        cache: LayerCache | None = None,
    ) -> Tensor:
        """``x`` holds columns ``positions.start …``; ``target_mask`` (real decoder tokens)
        covers every column from 0, the cached ones included."""
        keep = None if target_mask is None else target_mask[:, positions.start :]
        x = self.conv(x, keep, cache)
        x = x + self.dropout(self.self_attention(self.norms[0](x), target_mask, True, cache))
        x = x + self.dropout(self.cross_attention(self.norms[1](x), memory, positions))
        return x + self.ffn(self.norms[2](x))


@dataclass
class DecodeState:
    """What cached decoding carries from step to step for one batch.

    ``memory`` is each decoder layer's prepared encoder memory (static for the whole
    output), ``total`` the :class:`QueryPositions` total of every step, ``layers`` the
    per-layer caches. ``target_mask`` marks the real decoder tokens of the columns so far
    when a prompt is given (the full pass masks pad tokens then); without a prompt it stays
    None, as the full pass has no decoder mask.
    """

    memory: list[PreparedMemory]
    total: int
    masked: bool
    layers: list[LayerCache]
    target_mask: Tensor | None = None
    columns: int = 0


class CrossAttentionInputs(NamedTuple):
    """What a decoder layer's backend got for the target rows of a teacher-forced
    pass: queries, the prepared memory, the rows' positions and the source padding mask."""

    q: Tensor
    memory: PreparedMemory
    positions: QueryPositions
    key_padding_mask: Tensor


class EncoderDecoder(nn.Module):
    """Pre-norm Transformer; the target embedding is tied to the output projection and
    handed to the task's frontend, which may share it with the source.

    ``backend`` is a factory called once per decoder layer (e.g.
    ``functools.partial(spec.build, options)``, or a backend class): every layer's
    cross-attention gets its own instance, so a backend may keep per-layer state.

    ``decode_length`` is the generation budget in target columns (the task's
    ``max_new_tokens``). Query positions span ``P + max(decode_length, T)`` columns for a
    prompt of width ``P`` and ``T`` target columns, in teacher forcing and decoding alike,
    so a position-dependent backend aligns a token the same way in both. None: the
    columns actually present (``T``, or ``max_length`` when generating).
    """

    def __init__(
        self,
        config: ModelSettings,
        vocab_size: int,
        pad_id: int,
        frontend: Callable[[int, nn.Embedding], nn.Module],
        backend: Callable[[], AttentionBackend],
        decode_length: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(backend, nn.Module):
            raise TypeError(
                "EncoderDecoder takes a backend factory (one instance per decoder layer), "
                f"not an instance: pass e.g. lambda: {type(backend).__name__}(...)"
            )
        if decode_length is not None and decode_length < 1:
            raise ValueError(f"decode_length must be None or at least 1, got {decode_length}")
        self.config = config
        self.pad_id = pad_id
        self.decode_length = decode_length
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

    def columns(self, prompt: Tensor | None, length: int) -> int:
        """The query positions' ``total`` for ``length`` target columns after ``prompt``."""
        width = 0 if prompt is None else prompt.shape[1]
        return width + max(self.decode_length or 0, length)

    def encode(self, source) -> tuple[list[PreparedMemory], Tensor]:
        """Each decoder layer's prepared memory of the source, and its padding mask (B, Nk)."""
        x, mask = self.frontend(source)
        for layer in self.encoder:
            x = layer(x, mask)
        memory = self.encoder_norm(x)
        return [layer.cross_attention.prepare(memory, mask) for layer in self.decoder], mask

    def decode(
        self,
        target_in: Tensor,
        memory: list[PreparedMemory],
        prompt: Tensor | None = None,
        total: int | None = None,
    ) -> Tensor:
        """Logits (B, T, vocab) for teacher-forced target tokens after an optional prompt.

        ``prompt`` (B, P) is left-padded with ``pad_id``: decoder tokens that condition the
        answer (a question) but are not predicted. Positions are rotary (relative), so left
        padding changes nothing but the masked keys. ``total``: the query positions' total
        (default :meth:`columns`).
        """
        tokens = target_in if prompt is None else torch.cat([prompt, target_in], dim=1)
        total = self.columns(prompt, target_in.shape[1]) if total is None else total
        logits = self._run_decoder(tokens, self.start_decoding(memory, total, prompt), False)
        return logits if prompt is None else logits[:, prompt.shape[1] :]

    def forward(self, source, target_in: Tensor, prompt: Tensor | None = None) -> Tensor:
        memory, _ = self.encode(source)
        return self.decode(target_in, memory, prompt)

    def start_decoding(
        self, memory: list[PreparedMemory], total: int, prompt: Tensor | None = None
    ) -> DecodeState:
        """Empty caches for decoding a batch whose queries span ``total`` columns; decoder
        keys are masked where ``pad_id`` when a prompt is given, as in the full pass."""
        layers = [LayerCache() for _ in self.decoder]
        return DecodeState(memory=memory, total=total, masked=prompt is not None, layers=layers)

    def extend(self, tokens: Tensor, state: DecodeState) -> Tensor:
        """Logits (B, N, vocab) of ``N`` new decoder columns, filling ``state``'s caches.

        The first call is the prefill (prompt + BOS in one pass), each later one a decode
        step of one token per sequence; both compute only the new columns.
        """
        return self._run_decoder(tokens, state, cache=True)

    def _run_decoder(self, tokens: Tensor, state: DecodeState, cache: bool) -> Tensor:
        """The decoder over ``tokens``, decoder columns ``state.columns …``: with ``cache``
        the layers read and fill ``state.layers``, without it ``tokens`` is everything."""
        if state.masked:
            real = tokens != self.pad_id
            previous = state.target_mask
            state.target_mask = real if previous is None else torch.cat([previous, real], 1)
        positions = QueryPositions(state.columns, state.total)
        x = self.embedding(tokens) * math.sqrt(self.config.d_model)
        for layer, memory, layer_cache in zip(
            self.decoder, state.memory, state.layers, strict=True
        ):
            x = layer(x, memory, positions, state.target_mask, layer_cache if cache else None)
        state.columns += tokens.shape[1]
        return F.linear(self.decoder_norm(x), self.embedding.weight)

    def last_cross_attention_inputs(
        self, source, target_in: Tensor, prompt: Tensor | None = None
    ) -> CrossAttentionInputs:
        """What the last decoder layer's cross-attention gets when ``target_in`` is
        teacher-forced, cut to the ``target_in`` rows (prompt dropped)."""
        return self.cross_attention_inputs(source, target_in, prompt)[-1]

    def cross_attention_inputs(
        self, source, target_in: Tensor, prompt: Tensor | None = None
    ) -> list[CrossAttentionInputs]:
        """What each decoder layer's cross-attention gets (first layer first) when
        ``target_in`` is teacher-forced, cut to the ``target_in`` rows (prompt dropped).

        For attention maps and fidelity: hooks read them off one ordinary pass, so the
        model's own code path (prepared memory, positions) is what is shown and training
        pays nothing.
        """
        captured: list[tuple[Tensor, PreparedMemory, QueryPositions]] = []

        def capture(module: CrossAttention, args: tuple) -> None:
            x, memory, positions = args
            captured.append((module.queries(x), memory, positions))

        memory, mask = self.encode(source)
        handles = [
            layer.cross_attention.register_forward_pre_hook(capture) for layer in self.decoder
        ]
        try:
            self.decode(target_in, memory, prompt)
        finally:
            for handle in handles:
                handle.remove()
        inputs = []
        for q, prepared, positions in captured:
            first = q.shape[2] - target_in.shape[1]
            target_rows = QueryPositions(positions.start + first, positions.total)
            inputs.append(CrossAttentionInputs(q[:, :, first:], prepared, target_rows, mask))
        return inputs

    @torch.no_grad()
    def generate(
        self,
        source,
        bos_id: int,
        eos_id: int,
        max_length: int,
        prompt: Tensor | None = None,
        cache: bool = True,
    ) -> Tensor:
        """Greedy decoding: (B, ≤max_length) token ids after BOS, PAD after EOS.

        ``cache=True`` decodes incrementally (prefill, then one new column per step);
        ``cache=False`` re-runs the decoder over the whole prefix at every step, the
        reference the cached path equals token for token. Both use the same positions.
        """
        memory, mask = self.encode(source)
        total = self.columns(prompt, max_length)
        batch = mask.shape[0]
        tokens = torch.full((batch, 1), bos_id, dtype=torch.long, device=mask.device)
        state = self.start_decoding(memory, total, prompt) if cache else None
        new = tokens if prompt is None else torch.cat([prompt, tokens], dim=1)
        finished = torch.zeros(batch, dtype=torch.bool, device=mask.device)
        for _ in range(max_length):
            if state is None:
                logits = self.decode(tokens, memory, prompt, total)
            else:
                logits = self.extend(new, state)
            next_token = logits[:, -1].argmax(-1).masked_fill(finished, self.pad_id)
            new = next_token[:, None]
            tokens = torch.cat([tokens, new], dim=1)
            finished |= next_token == eos_id
            if bool(finished.all()):
                break
        return tokens[:, 1:]

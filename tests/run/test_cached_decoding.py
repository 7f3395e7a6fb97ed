"""Cached incremental decoding is the full pass computed one column at a time: the same
greedy tokens as re-decoding the whole prefix for every built-in backend (with and
without left-padded prompts, ragged sources), the same logits as teacher forcing, and a
teacher-forced pass of a position-free backend that is the formula it was before prepared
memory and query positions."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F

from xbench.api.options import build_options
from xbench.config.settings import ModelSettings
from xbench.registry import get_registry
from xbench.run.model import EncoderDecoder, _merge_heads, _split_heads, rotary
from xbench.taskkit.text import TokenFrontend

VOCAB, PAD, BOS, EOS = 13, 0, 1, 2
MAX_LENGTH = 10
CONFIG = ModelSettings(d_model=16, heads=2, encoder_layers=1, decoder_layers=2, ffn_dim=32)
# Every built-in backend; sparse with blocks of 2 so that the 9 source keys and the
# 14 decoder columns (prompt 4 + budget 10) span several blocks and the layout matters.
BACKENDS = {
    "naive": ("naive", {}),
    "flash": ("flash", {}),
    "uniform": ("uniform", {}),
    "linear-elu": ("linear", {"feature_map": "elu"}),
    "linear-favor": ("linear", {"feature_map": "favor"}),
    "sparse-local": ("sparse", {"pattern": "local", "block_size": 2}),
    "sparse-strided": ("sparse", {"pattern": "strided", "block_size": 2, "stride": 2}),
    "sparse-bigbird": ("sparse", {"pattern": "bigbird", "block_size": 2}),
}
POSITION_FREE = ["naive", "flash", "uniform", "linear-elu", "linear-favor"]
# Left-padded prompts of different lengths (4, 2 and 3 real tokens) and ragged sources.
PROMPT = torch.tensor([[7, 8, 9, 4], [0, 0, 5, 6], [0, 4, 5, 6]])
SOURCE_LENGTHS = (9, 5, 2)


def _model(case: str, seed: int, decode_length: int | None = None) -> EncoderDecoder:
    """A small random float64 model whose greedy choices change from token to token.

    Weights are redrawn larger than the default init, which makes an untrained decoder
    repeat one token and would hide a wrong cache; float64 keeps argmax ties from flipping.
    """
    name, options = BACKENDS[case]
    spec = get_registry().backend(name)
    factory = functools.partial(spec.build, build_options(spec.options, options, "backend"))
    torch.manual_seed(seed)
    model = EncoderDecoder(
        CONFIG, VOCAB, PAD, lambda d, emb: TokenFrontend(emb, PAD), factory, decode_length
    )
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                parameter.normal_(0.0, 1.5 / parameter.shape[-1] ** 0.5)
        model.embedding.weight.normal_(0.0, 1.0)
    return model.double().eval()


def _source(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    source = torch.full((len(SOURCE_LENGTHS), max(SOURCE_LENGTHS)), PAD)
    for i, length in enumerate(SOURCE_LENGTHS):
        source[i, :length] = torch.randint(3, VOCAB, (length,), generator=generator)
    return source


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", BACKENDS)
def test_cached_greedy_decoding_equals_full_re_decoding(case, seed):
    source = _source(seed)
    for decode_length in (None, MAX_LENGTH + 2):
        model = _model(case, seed, decode_length)
        for prompt in (None, PROMPT):
            cached = model.generate(source, BOS, EOS, MAX_LENGTH, prompt)
            full = model.generate(source, BOS, EOS, MAX_LENGTH, prompt, cache=False)
            assert torch.equal(cached, full), (decode_length, prompt is not None)


def test_the_test_models_write_varied_outputs():
    """The equality above means something only when the outputs vary by position."""
    outputs = _model("naive", 1).generate(_source(1), BOS, EOS, MAX_LENGTH, PROMPT)
    assert all(len(set(row.tolist())) >= 3 for row in outputs)


def _target_in(seed: int) -> torch.Tensor:
    """BOS and 7 tokens per item, the shorter items right-padded as in a training batch."""
    generator = torch.Generator().manual_seed(seed + 100)
    target = torch.randint(3, VOCAB, (3, 8), generator=generator)
    target[:, 0] = BOS
    target[1, 5:] = PAD
    target[2, 3:] = PAD
    return target


@pytest.mark.parametrize("case", BACKENDS)
def test_teacher_forced_logits_equal_the_cached_decoder_fed_the_same_tokens(case):
    target_in = _target_in(0)
    model = _model(case, 0, decode_length=target_in.shape[1])
    with torch.no_grad():
        memory, _ = model.encode(_source(0))
        for prompt in (None, PROMPT):
            forced = model.decode(target_in, memory, prompt)
            state = model.start_decoding(memory, model.columns(prompt, target_in.shape[1]), prompt)
            first = target_in[:, :1] if prompt is None else torch.cat([prompt, target_in[:, :1]], 1)
            steps = [model.extend(first, state)[:, -1:]]
            steps += [model.extend(target_in[:, t : t + 1], state) for t in range(1, 8)]
            torch.testing.assert_close(torch.cat(steps, dim=1), forced, rtol=1e-9, atol=1e-9)


def _pre_prepare_logits(model: EncoderDecoder, source, target_in, prompt) -> torch.Tensor:
    """The teacher-forced decoder written out as it was before prepared memory: every
    layer's backend ``forward(q, k, v, mask)`` on the encoder's keys and values, causal
    self-attention masking pad keys only when a prompt is given."""
    memory, mask = model.encode(source)
    tokens = target_in if prompt is None else torch.cat([prompt, target_in], dim=1)
    keep = None if prompt is None else tokens != PAD
    length = tokens.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    eye = torch.eye(length, dtype=torch.bool)
    x = model.embedding(tokens) * math.sqrt(CONFIG.d_model)
    for layer, prepared in zip(model.decoder, memory, strict=True):
        x = layer.conv(x, keep)
        attention = layer.self_attention
        heads = [
            _split_heads(t, CONFIG.heads) for t in attention.qkv(layer.norms[0](x)).chunk(3, -1)
        ]
        q, k, v = rotary(heads[0]), rotary(heads[1]), heads[2]
        allowed = None if keep is None else (keep[:, None, None, :] & causal) | eye
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, is_causal=keep is None)
        x = x + attention.out(_merge_heads(out))
        cross = layer.cross_attention
        q = cross.queries(layer.norms[1](x))
        x = x + cross.out(_merge_heads(cross.backend(q, prepared.k, prepared.v, mask)))
        x = x + layer.ffn(layer.norms[2](x))
    logits = F.linear(model.decoder_norm(x), model.embedding.weight)
    return logits if prompt is None else logits[:, prompt.shape[1] :]


@pytest.mark.parametrize("case", POSITION_FREE)
def test_a_position_free_backends_training_pass_is_the_formula_before_prepared_memory(case):
    model = _model(case, 0, decode_length=MAX_LENGTH).float()
    source, target_in = _source(0), _target_in(0)
    with torch.no_grad():
        for prompt in (None, PROMPT):
            reference = _pre_prepare_logits(model, source, target_in, prompt)
            torch.testing.assert_close(model(source, target_in, prompt), reference)


def test_decoding_past_the_positions_total_is_refused():
    model = _model("naive", 0)
    memory, _ = model.encode(_source(0))
    state = model.start_decoding(memory, total=2)
    model.extend(torch.full((3, 2), BOS), state)
    with pytest.raises(ValueError, match=r"start=2, total=2"):
        model.extend(torch.full((3, 1), BOS), state)

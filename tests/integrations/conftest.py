"""Tiny Hugging Face encoder-decoders for the transformers integration's tests, built offline.

Each architecture is created from its config class with random weights (large enough that
cross-attention visibly moves the logits), saved with ``save_pretrained`` and loaded back
with SDPA, as a user's local folder would be. Batches are padded: an encoder padding mask
that got lost would change the outputs. transformers is imported in the builders only, so
the other tests of this folder run without the extra.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from helpers.hf import tiny_marian

import xbench
from xbench.api.backend import BackendSpec
from xbench.registry import Registry, load_registry
from xbench_plugins.naive import NaiveAttention

VOCAB = 48
PAD, EOS, START = 0, 2, 1


@dataclass(frozen=True)
class TinyModel:
    """A saved tiny model, the inputs its encoder reads and its teacher-forced targets."""

    name: str
    folder: Path
    model_class: type
    inputs: dict[str, torch.Tensor]
    decoder_input_ids: torch.Tensor

    def load(self) -> torch.nn.Module:
        model = self.model_class.from_pretrained(self.folder, attn_implementation="sdpa")
        return model.eval()


def _token_batch() -> dict[str, torch.Tensor]:
    """Three sources of 11, 6 and 3 tokens, padded to 11."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (3, 11), generator=generator)
    mask = torch.ones_like(ids)
    for row, length in enumerate((11, 6, 3)):
        mask[row, length:] = 0
    return {"input_ids": ids.masked_fill(mask == 0, PAD), "attention_mask": mask}


def _targets(batch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(2)
    ids = torch.randint(3, VOCAB, (batch, 7), generator=generator)
    ids[:, 0] = START
    return ids


def _marian():
    return tiny_marian(
        0.3,
        vocab_size=VOCAB,
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=START,
        init_std=0.3,
    )


def _bart():
    import transformers

    config = transformers.BartConfig(
        vocab_size=VOCAB,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
        pad_token_id=PAD,
        bos_token_id=START,
        eos_token_id=EOS,
        decoder_start_token_id=START,
        forced_bos_token_id=None,
        forced_eos_token_id=None,
        init_std=0.3,
    )
    return transformers.BartForConditionalGeneration(config)


def _t5():
    import transformers

    config = transformers.T5Config(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=START,
        initializer_factor=5.0,
    )
    return transformers.T5ForConditionalGeneration(config)


def whisper_features():
    """Log-mel features of 1 s windows (100 frames), 16 bins: a tiny Whisper's input."""
    import transformers

    return transformers.WhisperFeatureExtractor(feature_size=16, chunk_length=1)


def _whisper():
    import transformers

    config = transformers.WhisperConfig(
        vocab_size=VOCAB,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=16,
        max_source_positions=50,
        max_target_positions=32,
        pad_token_id=PAD,
        bos_token_id=START,
        eos_token_id=EOS,
        decoder_start_token_id=START,
        suppress_tokens=None,
        begin_suppress_tokens=None,
        init_std=0.3,
    )
    return transformers.WhisperForConditionalGeneration(config)


def _audio_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    waves = [torch.randn(n, generator=generator).numpy() for n in (16000, 9000)]
    features = whisper_features()(waves, sampling_rate=16000, return_tensors="pt")
    return {"input_features": features.input_features}


BUILDERS = {"marian": _marian, "bart": _bart, "t5": _t5, "whisper": _whisper}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, TinyModel]:
    """Every architecture, saved once per test session."""
    torch.manual_seed(0)
    models = {}
    for name, build in BUILDERS.items():
        folder = tmp_path_factory.mktemp(name)
        model = build()
        model.save_pretrained(folder)
        # Whisper has no encoder padding mask: its features are padded to the window.
        inputs = _audio_batch() if name == "whisper" else _token_batch()
        batch = next(iter(inputs.values())).shape[0]
        models[name] = TinyModel(name, folder, type(model), inputs, _targets(batch))
    return models


@pytest.fixture(params=sorted(BUILDERS))
def tiny(request, tiny_models) -> TinyModel:
    return tiny_models[request.param]


@pytest.fixture
def text_tiny(tiny_models) -> TinyModel:
    return tiny_models["marian"]


class MaskDropping(NaiveAttention):
    """Exact attention that forgets the padding mask: what a lost mask looks like."""

    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        return super().forward(q, k, v, None, scale)


class CountingPrepares(NaiveAttention):
    """Exact attention that counts the memories it prepares (one list per backend)."""

    def __init__(self, prepared: list) -> None:
        super().__init__()
        self.prepared = prepared

    def prepare(self, k, v, key_padding_mask=None, scale=None):
        self.prepared.append(k.shape)
        return super().prepare(k, v, key_padding_mask, scale)


@dataclass
class NoOptions:
    pass


def _plugin(*specs: BackendSpec) -> types.SimpleNamespace:
    @xbench.hookimpl
    def xbench_register_backends(register):
        for spec in specs:
            register(spec)

    return types.SimpleNamespace(xbench_register_backends=xbench_register_backends)


@pytest.fixture
def mask_dropping_registry() -> Registry:
    spec = BackendSpec(
        name="maskless", build=lambda o: MaskDropping(), options=NoOptions, exact=False
    )
    return load_registry(extra_plugins=[("maskless", _plugin(spec))])


@pytest.fixture
def prepared() -> list:
    """The shapes of the memories the ``counting`` backend prepared, in order."""
    return []


@pytest.fixture
def counting_registry(prepared) -> Registry:
    spec = BackendSpec(
        name="counting",
        build=lambda o: CountingPrepares(prepared),
        options=NoOptions,
        exact=True,
    )
    return load_registry(extra_plugins=[("counting", _plugin(spec))])

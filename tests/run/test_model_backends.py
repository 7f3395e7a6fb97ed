"""One cross-attention backend per decoder layer: EncoderDecoder builds a distinct instance
for each layer, a backend with per-layer state (a call count, a learned temperature) works,
and the runner measures and records a layer's own instance. Each layer prepares its memory
once per source and attends with its queries' decoder columns."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from helpers import SMALL_QA, composed_config
from torch import nn

import xbench
from xbench.api.backend import (
    AttentionBackend,
    BackendSpec,
    PreparedMemory,
    QueryPositions,
    default_scale,
    masked_softmax_weights,
)
from xbench.config.settings import ModelSettings
from xbench.registry import load_registry
from xbench.run.model import EncoderDecoder
from xbench.run.plan import plan_run
from xbench.run.runner import execute
from xbench.taskkit.text import TokenFrontend

CONFIG = ModelSettings(d_model=16, heads=2, encoder_layers=1, decoder_layers=3, ffn_dim=32)


class CountingAttention(AttentionBackend):
    """Softmax attention with a learned temperature of its own that counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def attention_weights(self, q, k, v, key_padding_mask=None, scale=None):
        sharpened = default_scale(q, scale) * self.log_temperature.exp()
        return masked_softmax_weights(q, k, key_padding_mask, sharpened)

    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        self.calls += 1
        return self.attention_weights(q, k, v, key_padding_mask, scale) @ v

    def describe(self) -> dict:
        return {"kernel": "counting", "calls": self.calls}


def text_model() -> EncoderDecoder:
    torch.manual_seed(0)
    return EncoderDecoder(CONFIG, 12, 0, lambda d, emb: TokenFrontend(emb, 0), CountingAttention)


def test_every_decoder_layer_gets_its_own_backend():
    model = text_model()

    backends = model.backends
    assert len(backends) == CONFIG.decoder_layers
    assert len({id(b) for b in backends}) == CONFIG.decoder_layers
    assert all(isinstance(b, CountingAttention) for b in backends)
    learned = [name for name, _ in model.named_parameters() if name.endswith("log_temperature")]
    assert len(learned) == CONFIG.decoder_layers  # one parameter per layer, none shared


def test_a_backend_with_per_layer_state_works():
    model = text_model()
    source, target = torch.randint(1, 12, (2, 7)), torch.randint(1, 12, (2, 5))

    model(source, target).sum().backward()

    assert [b.calls for b in model.backends] == [1, 1, 1]  # a shared backend would count 3
    grads = [b.log_temperature.grad for b in model.backends]
    assert all(g is not None and torch.isfinite(g) for g in grads)
    assert len({float(g) for g in grads}) == CONFIG.decoder_layers  # each layer learns its own


def test_an_instance_instead_of_a_factory_is_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"backend factory .* lambda: CountingAttention\(\.\.\.\)"):
        EncoderDecoder(CONFIG, 12, 0, lambda d, emb: TokenFrontend(emb, 0), CountingAttention())


class RecordingAttention(AttentionBackend):
    """Softmax attention (the defaults) that records its prepare and attend calls."""

    def __init__(self) -> None:
        super().__init__()
        self.prepared = 0
        self.attended: list[tuple[int, QueryPositions]] = []  # (query rows, positions)

    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        return masked_softmax_weights(q, k, key_padding_mask, scale) @ v

    def prepare(self, k, v, key_padding_mask=None, scale=None) -> PreparedMemory:
        self.prepared += 1
        return super().prepare(k, v, key_padding_mask, scale)

    def attend(self, q, memory, positions=None):
        self.attended.append((q.shape[2], positions))
        return super().attend(q, memory, positions)


def _recording_model(decode_length: int | None) -> EncoderDecoder:
    torch.manual_seed(0)
    return EncoderDecoder(
        CONFIG, 12, 0, lambda d, emb: TokenFrontend(emb, 0), RecordingAttention, decode_length
    )


def test_cached_decoding_prepares_once_and_attends_with_each_steps_column():
    model = _recording_model(decode_length=6).eval()
    source, prompt = torch.randint(1, 12, (2, 7)), torch.tensor([[0, 4, 5], [6, 7, 8]])

    model.generate(source, bos_id=1, eos_id=99, max_length=4, prompt=prompt)  # never ends

    total = 3 + 6  # prompt width + the decoding budget
    expected = [(4, QueryPositions(0, total))]  # prefill: prompt + BOS
    expected += [(1, QueryPositions(column, total)) for column in (4, 5, 6)]
    for backend in model.backends:
        assert backend.prepared == 1
        assert backend.attended == expected


@pytest.mark.parametrize(("decode_length", "total"), [(None, 3 + 5), (4, 3 + 5), (9, 3 + 9)])
def test_teacher_forcing_spans_the_prompt_and_the_larger_of_budget_and_target(decode_length, total):
    model = _recording_model(decode_length)
    source, target_in = torch.randint(1, 12, (2, 7)), torch.randint(1, 12, (2, 5))

    model(source, target_in, torch.tensor([[0, 4, 5], [6, 7, 8]]))

    assert [b.attended for b in model.backends] == [[(8, QueryPositions(0, total))]] * 3


def test_a_decoding_budget_below_one_is_refused():
    with pytest.raises(ValueError, match="decode_length must be None or at least 1, got 0"):
        _recording_model(decode_length=0)


@dataclass
class _NoOptions:
    pass


class _CountingPlugin:
    @xbench.hookimpl
    def xbench_register_backends(self, register):
        register(
            BackendSpec(
                name="counting",
                build=lambda o: CountingAttention(),
                options=_NoOptions,
                exact=False,
            )
        )


def test_the_runner_trains_per_layer_backends_and_records_one_that_ran(tmp_path):
    registry = load_registry(extra_plugins=[("counting", _CountingPlugin())])
    config = composed_config(["trainer=debug", "logger=none", *SMALL_QA], registry)
    config["backend"] = {"name": "counting"}

    result = execute(plan_run(config, registry), tmp_path)

    assert result.status == "ok", result.error
    described = result.backend.describe
    assert described["kernel"] == "counting"
    assert described["calls"] > 0  # a layer's instance (the runner's probe never runs forward)

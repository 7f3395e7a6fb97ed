"""One cross-attention backend per decoder layer: EncoderDecoder builds a distinct instance
for each layer, a backend with per-layer state (a call count, a learned temperature) works,
and the runner measures and records a layer's own instance."""

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

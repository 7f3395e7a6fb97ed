"""README's backend example, taken from README.md itself, passes the conformance kit: the
plugin author's first step works, and this test fails as soon as README drifts. The kit
also tells an author who forgot ``attention_weights`` what to override."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from xbench.registry import get_registry

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _installed_plugins_imported():
    """Import the installed plugins before pytester runs the kit in-process: pytester forgets
    the modules a run imports, and torch's extensions cannot be imported a second time."""
    get_registry()


README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE_HEADER = "# my_attention.py"

KIT_ON_THE_EXAMPLE = """
import sys

import my_attention
from xbench.testing import BackendConformance


class TestReadmeExample(BackendConformance):
    backend_name = "sharp"
    extra_plugins = [("my_attention", sys.modules["my_attention"])]
"""


def readme_backend_example() -> str:
    """The python block of README that starts with ``# my_attention.py``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    found = [b for b in blocks if b.startswith(EXAMPLE_HEADER)]
    assert len(found) == 1, f"README must hold one python block starting {EXAMPLE_HEADER!r}"
    return found[0]


def test_readme_backend_example_passes_the_whole_kit(pytester):
    pytester.makepyfile(my_attention=readme_backend_example())
    pytester.makepyfile(test_kit_on_the_readme_example=KIT_ON_THE_EXAMPLE)
    pytester.syspathinsert()

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q")

    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes.get("passed", 0) >= 79, outcomes
    assert "skipped" not in outcomes, outcomes


SHARP_WITHOUT_ITS_WEIGHTS = '''
"""README's old example: a temperature in forward, exact softmax attention_weights inherited."""
import sys
from dataclasses import dataclass

import xbench
from xbench import AttentionBackend, BackendSpec, default_scale, masked_softmax_weights
from xbench.testing import BackendConformance


@dataclass
class NoOptions:
    pass


class ForgetsItsWeights(AttentionBackend):
    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        return masked_softmax_weights(q, k, key_padding_mask, default_scale(q, scale) * 2) @ v


@xbench.hookimpl
def xbench_register_backends(register):
    register(
        BackendSpec(
            name="forgets", build=lambda o: ForgetsItsWeights(), options=NoOptions, exact=False
        )
    )


class TestForgetsItsWeights(BackendConformance):
    backend_name = "forgets"
    extra_plugins = [("forgets", sys.modules[__name__])]
'''


def test_a_backend_that_forgets_to_override_attention_weights_is_told_what_to_override(pytester):
    pytester.makepyfile(test_kit_on_forgetful_backend=SHARP_WITHOUT_ITS_WEIGHTS)

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q", "-k", "definition")

    assert result.parseoutcomes().get("failed", 0) == 20  # 5 shapes × 2 masks × 2 dtypes
    output = result.stdout.str()
    assert "forward() differs from attention_weights(...) @ v" in output
    assert "override it (the inherited AttentionBackend.attention_weights is exact" in output
    assert "forward(..., scale=0.3) differs" not in output  # -k selected the definition cases


def test_an_exact_claim_that_is_wrong_says_so(pytester):
    source = SHARP_WITHOUT_ITS_WEIGHTS.replace("exact=False", "exact=True")
    pytester.makepyfile(test_kit_on_forgetful_backend=source)

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q", "-k", "explicit_scale")

    assert result.parseoutcomes().get("failed", 0) == 2
    output = result.stdout.str()
    assert "forward(..., scale=0.3) differs from exact masked softmax attention" in output
    assert "register with exact=False and override attention_weights()" in output


def test_readme_backend_example_decodes_in_the_model_without_prepare_or_positions():
    """README's backend implements ``forward`` only: the model's prepared-memory path falls
    back to it, and cached decoding writes what re-decoding the whole prefix writes."""
    from xbench.config.settings import ModelSettings
    from xbench.run.model import EncoderDecoder
    from xbench.taskkit.text import TokenFrontend

    namespace: dict = {}
    exec(compile(readme_backend_example(), "my_attention.py", "exec"), namespace)
    sharp = namespace["SharpAttention"]
    assert "prepare" not in vars(sharp) and "attend" not in vars(sharp)
    settings = ModelSettings(d_model=16, heads=2, encoder_layers=1, decoder_layers=2, ffn_dim=32)
    torch.manual_seed(0)
    model = EncoderDecoder(
        settings, 11, 0, lambda d, emb: TokenFrontend(emb, 0), lambda: sharp(0.5), decode_length=8
    ).double()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                parameter.normal_(0.0, 1.5 / parameter.shape[-1] ** 0.5)
    model.eval()
    source = torch.randint(3, 11, (3, 7))
    source[1, 4:] = 0  # ragged: padded source keys

    cached = model.generate(source, 1, 2, 8, cache=True)
    full = model.generate(source, 1, 2, 8, cache=False)

    assert torch.equal(cached, full)
    assert len(set(cached.flatten().tolist())) > 2  # the decoder's choices vary

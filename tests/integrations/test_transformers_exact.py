"""xbench backends swapped into tiny Hugging Face models: exact backends give the model's own
SDPA outputs (logits and greedy generation, on padded batches), the control does not, cached
decoding equals re-decoding, and a lost padding mask would be caught."""

from __future__ import annotations

import pytest
import torch
from transformers import AttentionMaskInterface

from xbench.integrations.transformers import use_backend

EXACT = ["naive", "flash"]
ATOL = 1e-4


def logits(model, tiny) -> torch.Tensor:
    with torch.no_grad():
        return model(**tiny.inputs, decoder_input_ids=tiny.decoder_input_ids).logits


def greedy(model, tiny, **kwargs) -> list[list[int]]:
    """Greedy output tokens (or beam search's, given ``num_beams``)."""
    with torch.no_grad():
        out = model.generate(**tiny.inputs, do_sample=False, max_new_tokens=8, **kwargs)
    return out.tolist()


@pytest.mark.parametrize("backend", EXACT)
def test_exact_backend_gives_the_sdpa_logits_and_greedy_output(tiny, backend):
    model = tiny.load()
    expected, expected_tokens = logits(model, tiny), greedy(model, tiny)

    use_backend(model, backend)

    torch.testing.assert_close(logits(model, tiny), expected, atol=ATOL, rtol=0)
    assert greedy(model, tiny) == expected_tokens


def test_self_attention_stays_sdpa(tiny):
    """Only cross-attention is swapped: the encoder's output is bit for bit the same."""
    model = tiny.load()
    with torch.no_grad():
        expected = model.get_encoder()(**tiny.inputs).last_hidden_state
        use_backend(model, "uniform")
        assert torch.equal(model.get_encoder()(**tiny.inputs).last_hidden_state, expected)


def test_the_control_backend_changes_the_outputs(tiny):
    model = tiny.load()
    expected = logits(model, tiny)

    use_backend(model, "uniform")

    assert (logits(model, tiny) - expected).abs().max() > 0.1


@pytest.mark.parametrize("backend", ["naive", "uniform", "linear"])
def test_cached_decoding_equals_redecoding(tiny, backend):
    model = use_backend(tiny.load(), backend)

    assert greedy(model, tiny, use_cache=True) == greedy(model, tiny, use_cache=False)


def test_sparse_queries_keep_their_positions_across_decode_steps(text_tiny):
    """Block-sparse attention aligns queries by their decoder column: a decode step of one
    row must see the keys that row sees when the whole sequence is re-decoded."""
    model = text_tiny.load()
    dense = logits(use_backend(model, "naive"), text_tiny)

    use_backend(model, "sparse", block_size=2, window=0, columns=12)

    assert (logits(model, text_tiny) - dense).abs().max() > 1e-3  # the pattern matters here
    assert greedy(model, text_tiny, use_cache=True) == greedy(model, text_tiny, use_cache=False)


def test_padded_batches_catch_a_lost_padding_mask(text_tiny, monkeypatch):
    """Without a mask function under the implementation's name transformers builds no mask
    at all: the padding is attended to and the logits move. This is what the exactness tests
    above would catch, and why the integration registers one."""
    model = text_tiny.load()
    expected = logits(model, text_tiny)
    use_backend(model, "naive")
    torch.testing.assert_close(logits(model, text_tiny), expected, atol=ATOL, rtol=0)

    monkeypatch.delitem(AttentionMaskInterface._global_mapping, model.config._attn_implementation)

    assert (logits(model, text_tiny) - expected).abs().max() > 1e-2


def test_a_backend_that_drops_the_padding_mask_fails_only_on_padded_batches(
    text_tiny, mask_dropping_registry
):
    model = text_tiny.load()
    expected = logits(model, text_tiny)
    full = {"input_ids": text_tiny.inputs["input_ids"][:1], "attention_mask": None}
    with torch.no_grad():
        unpadded = model(**full, decoder_input_ids=text_tiny.decoder_input_ids[:1]).logits

    use_backend(model, "maskless", registry=mask_dropping_registry)

    assert (logits(model, text_tiny) - expected).abs().max() > 1e-2
    with torch.no_grad():
        again = model(**full, decoder_input_ids=text_tiny.decoder_input_ids[:1]).logits
    torch.testing.assert_close(again, unpadded, atol=ATOL, rtol=0)


def test_beam_search_reorders_the_prepared_memory(text_tiny):
    """Beam search reorders the cached cross-attention keys each step: the memory follows."""
    model = text_tiny.load()
    expected = greedy(model, text_tiny, num_beams=3)

    use_backend(model, "naive")

    assert greedy(model, text_tiny, num_beams=3) == expected

"""The xbench conformance kit, applied to the sigmoid backend, plus what is specific to it."""

from __future__ import annotations

import math

import pytest
import torch
from xbench.testing import BackendConformance, registered

from xbench_sigmoid import SigmoidAttention


class TestSigmoidConformance(BackendConformance):
    backend_name = "sigmoid"
    weights_normalised = False  # each key's weight is its own sigmoid; rows need not sum to 1


class TestSigmoidWithFixedBiasConformance(BackendConformance):
    backend_name = "sigmoid"
    options = {"bias": -2.0}
    weights_normalised = False


def test_is_registered_through_its_entry_point():
    entry = registered("backend", "sigmoid")

    assert entry.distribution == "xbench-sigmoid"
    assert entry.spec.exact is False


@pytest.mark.parametrize("bias", [None, -1.5])
def test_weights_are_sigmoids_of_the_biased_scores(bias):
    q, k, v = torch.randn(2, 1, 3, 8), torch.randn(2, 1, 5, 8), torch.randn(2, 1, 5, 4)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])

    weights = SigmoidAttention(bias).attention_weights(q, k, v, mask)

    for item, real in enumerate((5, 2)):
        shift = -math.log(real) if bias is None else bias
        scores = q[item] @ k[item, :, :real].transpose(-2, -1) / math.sqrt(8)
        torch.testing.assert_close(weights[item, ..., :real], torch.sigmoid(scores + shift))


def test_default_bias_keeps_the_weight_mass_near_one_for_any_length():
    """With b = -log(n) and scores near 0, each weight is about 1/(n+1): rows sum to ≈ 1."""
    for n in (4, 64, 1024):
        q, k = torch.zeros(1, 1, 1, 8), torch.zeros(1, 1, n, 8)
        weights = SigmoidAttention().attention_weights(q, k, k, None)

        assert weights.sum().item() == pytest.approx(n / (n + 1), rel=1e-4)

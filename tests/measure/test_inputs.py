"""The one inputs builder: shapes and dtypes, masks (none, all real, ragged padding),
rotation within a memory budget, and gradients for forward + backward."""

from __future__ import annotations

import pytest
import torch

from xbench.measure.inputs import input_bytes, make_inputs, padding_mask
from xbench.measure.types import AttentionShape


def shape(**changes) -> AttentionShape:
    base = {"batch": 4, "heads": 2, "nq": 8, "nk": 40, "head_dim": 16}
    base |= {"dtype": "float32", "device": "cpu"}
    return AttentionShape(**{**base, **changes})


def test_inputs_have_the_shape_dtype_and_an_all_real_mask_by_default():
    inputs = make_inputs(shape(dtype="bfloat16"))
    [(q, k, v)] = inputs.sets

    assert q.shape == (4, 2, 8, 16) and k.shape == v.shape == (4, 2, 40, 16)
    assert q.dtype == torch.bfloat16 and not q.requires_grad
    assert inputs.mask.dtype == torch.bool and bool(inputs.mask.all())
    assert inputs.grad_out is None
    assert make_inputs(shape(padded_fraction=None)).mask is None


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.7, 1.0])
def test_a_padded_fraction_gives_ragged_right_padded_lengths_of_that_mean(fraction):
    mask = padding_mask(batch=5, nk=200, padded_fraction=fraction)
    real = mask.sum(dim=1)

    assert (1 - real.float().mean() / 200).item() == pytest.approx(fraction, abs=0.01)
    if fraction < 1.0:
        assert len(set(real.tolist())) > 1  # ragged, not one length for all
    assert bool((real[:-1] >= real[1:]).all())  # first item longest
    for row, length in zip(mask, real.tolist(), strict=True):
        assert bool(row[:length].all()) and not bool(row[length:].any())  # real keys first


def test_half_or_less_padding_keeps_one_full_item_and_more_leaves_one_empty():
    assert padding_mask(4, 100, 0.3)[0].all()
    assert not padding_mask(4, 100, 0.8)[-1].any()
    assert padding_mask(1, 100, 0.3).sum().item() == 70
    with pytest.raises(ValueError, match="padded_fraction=1.5"):
        padding_mask(2, 10, 1.5)


def test_rotation_is_limited_by_the_memory_budget():
    few = make_inputs(shape(), sets=5, budget_bytes=0)
    many = make_inputs(shape(), sets=5, budget_bytes=5 * input_bytes(shape()))

    assert len(few.sets) == 1
    assert len(many.sets) == 5
    assert many.next()[0] is many.sets[0][0] and many.next()[0] is many.sets[1][0]
    assert not torch.equal(many.sets[0][0], many.sets[1][0])


def test_same_seed_same_inputs():
    first, again = make_inputs(shape(), seed=3), make_inputs(shape(), seed=3)

    assert torch.equal(first.sets[0][1], again.sets[0][1])
    assert not torch.equal(first.sets[0][1], make_inputs(shape(), seed=4).sets[0][1])


def test_forward_backward_inputs_require_gradients_and_carry_the_output_gradient():
    inputs = make_inputs(shape(passes="fwd+bwd"))

    assert all(t.requires_grad for t in inputs.sets[0])
    assert inputs.grad_out.shape == (4, 2, 8, 16) and not inputs.grad_out.requires_grad


def test_input_bytes_count_q_k_v_and_output():
    assert input_bytes(shape(nq=10, nk=30, batch=1, heads=1, head_dim=2)) == 4 * 2 * 2 * 40
    assert input_bytes(shape(dtype="float16")) == 4 * 2 * 16 * 2 * (8 + 40) * 2

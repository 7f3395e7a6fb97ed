"""The flash backend's prepared memory and layouts: ``prepare`` builds the SDPA mask once and
drops it when every key is real, ``attend`` equals ``forward`` and the float64 reference,
``layout=packed`` (only the real keys, as jagged nested tensors) equals the padded layout,
and ``describe()`` says which kernel ran with and without a mask."""

from __future__ import annotations

import pytest
import torch

from xbench.api.backend import PreparedMemory
from xbench.api.errors import UserError
from xbench.api.options import build_options
from xbench.testing import Shape, lengths_mask, make_inputs, reference_attention
from xbench_plugins.flash import FlashAttention, FlashMemory, FlashOptions

RAGGED = [7, 5, 0]  # one full item, one padded, one with no real key


def inputs(nq=4, nk=7, d=16, dv=None):
    return make_inputs(Shape(nq=nq, nk=nk, d=d, dv=dv, batch=3, heads=2))


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_prepare_drops_a_mask_whose_keys_are_all_real(layout):
    q, k, v = inputs()
    backend = FlashAttention(layout=layout)

    memory = backend.prepare(k, v, torch.ones(3, 7, dtype=torch.bool))

    assert isinstance(memory, FlashMemory)
    assert memory.sdpa_mask is None and memory.empty is None and memory.packed_k is None
    torch.testing.assert_close(backend.attend(q, memory), backend(q, k, v))
    described = backend.describe()
    assert described["masked"] is False and described["kernel_unmasked"] == "flash"
    assert [s for s in described["chosen"] if "mask1" in s] == []


def test_prepare_keeps_a_ragged_mask_and_attend_equals_forward_and_the_reference():
    q, k, v = inputs()
    mask = lengths_mask(RAGGED, 7)
    backend = FlashAttention()

    memory = backend.prepare(k, v, mask)

    assert memory.sdpa_mask.shape == (3, 1, 1, 7)
    assert torch.equal(memory.sdpa_mask[:2, 0, 0], mask[:2])  # the empty item is opened up
    assert memory.empty.tolist() == [False, False, True]
    out = backend.attend(q, memory)
    torch.testing.assert_close(out, backend(q, k, v, key_padding_mask=mask))
    torch.testing.assert_close(out, reference_attention(q, k, v, mask).float())
    assert out[2].abs().max() == 0


def test_describe_reports_the_kernel_under_a_mask_and_without_one():
    q, k, v = inputs()
    backend = FlashAttention()

    backend(q, k, v, key_padding_mask=lengths_mask(RAGGED, 7))
    backend(q, k, v)
    described = backend.describe()

    # torch 2.13 on CPU: the fused flash kernel accepts a boolean mask, so nothing falls back
    assert described["kernel_masked"] == described["kernel_unmasked"] == "flash"
    assert described["masked"] is False and described["implementation"] == "padded"
    assert sorted(described["chosen"]) == [
        "cpu/float32/D16/Dv16/mask0/Nq≤4/Nk≤8",
        "cpu/float32/D16/Dv16/mask1/Nq≤4/Nk≤8",
    ]
    assert described["refused"] == {}


@pytest.mark.parametrize(("nq", "dv", "scale"), [(1, None, None), (4, 24, 0.3)])
def test_packed_layout_equals_the_padded_one(nq, dv, scale):
    q, k, v = inputs(nq=nq, dv=dv)
    mask = lengths_mask(RAGGED, 7)
    padded, packed = FlashAttention(), FlashAttention(layout="packed")

    memory = packed.prepare(k, v, mask, scale)
    out = packed.attend(q, memory)

    assert memory.packed_k.is_nested and memory.sdpa_mask is None
    assert memory.packed_k.transpose(1, 2).values().shape[0] == sum(RAGGED)  # no padding kept
    torch.testing.assert_close(out, padded(q, k, v, key_padding_mask=mask, scale=scale))
    torch.testing.assert_close(out, reference_attention(q, k, v, mask, scale).float())


def test_packed_gradients_equal_the_padded_ones():
    mask = lengths_mask([7, 3, 1], 7)
    grads = []
    for layout in ("padded", "packed"):
        q, k, v = (t.requires_grad_() for t in inputs())
        out = FlashAttention(layout=layout)(q, k, v, key_padding_mask=mask)
        grads.append(torch.autograd.grad(out.square().sum(), (q, k, v)))

    for padded, packed in zip(*grads, strict=True):
        torch.testing.assert_close(packed, padded)


def test_packed_layout_on_cpu_runs_the_math_kernel_and_says_so():
    q, k, v = inputs()
    backend = FlashAttention(layout="packed")

    backend(q, k, v, key_padding_mask=lengths_mask(RAGGED, 7))
    described = backend.describe()

    assert described["kernel"] == described["kernel_masked"] == "math"
    assert described["implementation"] == "packed (nested jagged)"
    assert described["refused"] == {"cpu/float32/D16/Dv16/mask1/packed/Nq≤4/Nk≤8": ["flash"]}
    forced = FlashAttention(kernel="flash", layout="packed")
    reason = forced.supports(q, k, v, lengths_mask(RAGGED, 7))
    assert "kernel=flash" in reason and "layout=packed" in reason
    assert forced.supports(q, k, v) is None  # nothing to pack: the padded path runs


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_select_keeps_the_memory_of_the_chosen_items(layout):
    q, k, v = inputs()
    mask = lengths_mask(RAGGED, 7)
    backend = FlashAttention(layout=layout)
    index = torch.tensor([2, 1])

    selected = backend.prepare(k, v, mask).select(index)
    out = backend.attend(q[index], selected)

    assert selected.layout == layout and selected.batch == 2
    torch.testing.assert_close(out, backend(q[index], k[index], v[index], mask[index]))


def test_attend_accepts_a_default_prepared_memory():
    q, k, v = inputs()
    mask = lengths_mask(RAGGED, 7)
    backend = FlashAttention()

    out = backend.attend(q, PreparedMemory(k, v, mask))

    torch.testing.assert_close(out, backend(q, k, v, key_padding_mask=mask))


def test_layout_option_is_validated():
    assert build_options(FlashOptions, {"layout": "packed"}, "backend").layout == "packed"
    with pytest.raises(UserError, match=r"backend\.layout='jagged'.*choose one of: padded, packed"):
        build_options(FlashOptions, {"layout": "jagged"}, "backend")

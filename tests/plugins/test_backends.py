"""Built-in backends, built through the registry: the mask contract, shapes, agreement with
a float64 softmax reference, attention weights, and what the flash backend reports."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from xbench.api.backend import QueryPositions
from xbench.api.errors import UserError
from xbench.api.options import build_options
from xbench.registry import load_registry
from xbench.testing import (
    Case,
    Shape,
    lengths_mask,
    make_inputs,
    reference_attention,
    reference_weights,
)
from xbench_plugins.flash import FlashAttention

ALL = ("naive", "flash", "uniform")
EXACT = ("naive", "flash")


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def build(registry, name: str, **options):
    spec = registry.backend(name)
    return spec.build(build_options(spec.options, options, "backend"))


@pytest.mark.parametrize("name", ALL)
def test_shapes_with_nq_nk_and_d_dv_all_different(registry, name):
    q, k, v = make_inputs(Shape(nq=4, nk=9, d=16, dv=24, batch=2, heads=3))
    mask = lengths_mask([9, 5], 9)
    backend = build(registry, name)

    out = backend(q, k, v, key_padding_mask=mask)
    weights = backend.attention_weights(q, k, v, mask)

    assert out.shape == (2, 3, 4, 24)
    assert weights.shape == (2, 3, 4, 9)
    assert out.dtype == q.dtype
    assert backend.supports(q, k, v, mask) is None


@pytest.mark.parametrize("dv", [16, 24], ids=["D==Dv", "D!=Dv"])
@pytest.mark.parametrize("name", ALL)
def test_padded_keys_have_no_influence(registry, name, dv):
    q, k, v = make_inputs(Shape(nq=5, nk=8, d=16, dv=dv))
    mask = lengths_mask([8, 5, 1], 8)
    backend = build(registry, name)
    out = backend(q, k, v, key_padding_mask=mask)

    k2, v2 = k.clone(), v.clone()
    padded = ~mask[:, None, :, None]
    k2 = torch.where(padded, 1e3 * torch.randn_like(k), k2)
    v2 = torch.where(padded, 1e3 * torch.randn_like(v), v2)
    out2 = backend(q, k2, v2, key_padding_mask=mask)

    torch.testing.assert_close(out2, out, rtol=0, atol=1e-6)
    # and the mask did something: without it, those keys would change the output
    unmasked = backend(q, k2, v2)
    assert (unmasked - out).abs().max() > 1.0


@pytest.mark.parametrize(
    ("name", "options", "dv"),
    [
        ("naive", {}, 16),
        ("flash", {}, 16),
        ("flash", {}, 24),
        ("flash", {"kernel": "math"}, 16),
        ("flash", {"kernel": "flash"}, 16),
        ("uniform", {}, 16),
    ],
    ids=["naive", "flash-auto", "flash-auto-Dv", "flash-math", "flash-flash", "uniform"],
)
def test_all_padded_item_gives_zeros_and_finite_gradients(registry, name, options, dv):
    q, k, v = make_inputs(Shape(nq=4, nk=6, d=16, dv=dv))
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    mask = lengths_mask([6, 0, 2], 6)
    backend = build(registry, name, **options)

    out = backend(q, k, v, key_padding_mask=mask)
    (out * torch.randn_like(out)).sum().backward()

    assert torch.isfinite(out).all()
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    assert out[0].abs().sum() > 0 and out[2].abs().sum() > 0
    assert v.grad is not None
    # uniform ignores q and k, so they may get no gradient at all
    for grad in (t.grad for t in (q, k, v) if t.grad is not None):
        assert torch.isfinite(grad).all()
        assert torch.equal(grad[1], torch.zeros_like(grad[1]))
    assert v.grad[0].abs().sum() > 0
    # padded values of a partly padded item get no gradient either
    assert torch.equal(v.grad[2, :, 2:], torch.zeros_like(v.grad[2, :, 2:]))


@pytest.mark.parametrize("name", ALL)
def test_all_padded_weights_are_zero(registry, name):
    q, k, v = make_inputs(Shape(nq=5, nk=6, d=16, batch=2))
    mask = lengths_mask([0, 3], 6)

    weights = build(registry, name).attention_weights(q, k, v, mask)

    assert torch.isfinite(weights).all()
    assert torch.equal(weights[0], torch.zeros_like(weights[0]))


@pytest.mark.parametrize("padded", [False, True], ids=["no-mask", "padded"])
@pytest.mark.parametrize("head_dim", [32, 64, 80, 128])
@pytest.mark.parametrize("name", EXACT)
def test_exact_backends_match_float64_reference_float32(registry, name, head_dim, padded):
    q, k, v = make_inputs(Shape(nq=7, nk=13, d=head_dim, batch=2), seed=head_dim)
    mask = lengths_mask([13, 6], 13) if padded else None

    out = build(registry, name)(q, k, v, key_padding_mask=mask)

    torch.testing.assert_close(
        out.double(), reference_attention(q, k, v, mask), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("head_dim", [32, 64, 80, 128])
@pytest.mark.parametrize("name", EXACT)
def test_exact_backends_match_float64_reference_bfloat16(registry, name, head_dim):
    q, k, v = make_inputs(Shape(nq=7, nk=13, d=head_dim, batch=2), Case("cpu", torch.bfloat16))
    mask = lengths_mask([13, 6], 13)

    out = build(registry, name)(q, k, v, key_padding_mask=mask)

    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(
        out.double(), reference_attention(q, k, v, mask), rtol=3e-2, atol=3e-2
    )


@pytest.mark.parametrize("name", EXACT)
def test_exact_backends_honour_an_explicit_scale(registry, name):
    q, k, v = make_inputs(Shape(nq=5, nk=7, d=32, dv=8))
    mask = lengths_mask([7, 3, 1], 7)

    out = build(registry, name)(q, k, v, key_padding_mask=mask, scale=0.3)

    torch.testing.assert_close(
        out.double(), reference_attention(q, k, v, mask, scale=0.3), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("name", ALL)
def test_attention_weights_are_distributions_over_real_keys(registry, name):
    q, k, v = make_inputs(Shape(nq=5, nk=8, d=16, dv=12))
    mask = lengths_mask([8, 5, 1], 8)
    backend = build(registry, name)

    weights = backend.attention_weights(q, k, v, mask)

    assert (weights >= 0).all()
    keep = mask[:, None, None, :].expand_as(weights)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    assert torch.equal(weights[~keep], torch.zeros_like(weights[~keep]))
    torch.testing.assert_close(
        weights @ v, backend(q, k, v, key_padding_mask=mask), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("name", EXACT)
def test_exact_backend_weights_match_reference_softmax(registry, name):
    q, k, v = make_inputs(Shape(nq=5, nk=7, d=32))
    mask = lengths_mask([7, 4, 2], 7)

    weights = build(registry, name).attention_weights(q, k, v, mask)

    torch.testing.assert_close(
        weights.double(), reference_weights(q, k, mask), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("with_mask", [False, True])
def test_uniform_is_the_mean_over_real_keys(registry, with_mask):
    q, k, v = make_inputs(Shape(nq=4, nk=9, d=8, dv=5))
    real = [9, 4, 1]
    mask = lengths_mask(real, 9) if with_mask else None

    out = build(registry, "uniform")(q, k, v, key_padding_mask=mask)

    counts = real if with_mask else [9, 9, 9]
    for b, n in enumerate(counts):
        expected = v[b, :, :n].mean(dim=1, keepdim=True).expand(-1, 4, -1)
        torch.testing.assert_close(out[b], expected)


def test_uniform_pools_the_values_once_and_attend_only_repeats_them(registry):
    q, k, v = make_inputs(Shape(nq=4, nk=9, d=8, dv=5))
    mask = lengths_mask([9, 4, 0], 9)
    backend = build(registry, "uniform")

    memory = backend.prepare(k, v, mask)
    stripped = replace(memory, k=k[:, :, :1], v=torch.full_like(v[:, :, :1], 1e3))
    step = backend.attend(q[:, :, :1], stripped, QueryPositions(start=2, total=6))

    assert memory.pooled.shape == (3, 2, 1, 5)
    expected = torch.stack([v[0, :, :9].mean(1), v[1, :, :4].mean(1)])
    torch.testing.assert_close(memory.pooled[:2, :, 0], expected)
    assert torch.equal(memory.pooled[2], torch.zeros_like(memory.pooled[2]))
    assert torch.equal(step, backend(q, k, v, mask)[:, :, :1])


def test_uniform_ignores_the_queries(registry):
    q, k, v = make_inputs(Shape(nq=5, nk=7, d=16))
    backend = build(registry, "uniform")

    torch.testing.assert_close(backend(q, k, v), backend(torch.randn_like(q), k, v))


@pytest.mark.parametrize(("dv", "kernel"), [(16, "flash"), (24, "math")], ids=["D==Dv", "D!=Dv"])
@pytest.mark.parametrize("padded", [False, True])
def test_flash_on_cpu_reports_the_kernel_that_ran(registry, dv, kernel, padded):
    q, k, v = make_inputs(Shape(nq=5, nk=7, d=16, dv=dv))
    mask = lengths_mask([7, 5, 2], 7) if padded else None
    backend = build(registry, "flash")
    assert backend.describe()["kernel"] is None

    backend(q, k, v, key_padding_mask=mask)
    described = backend.describe()

    assert described["kernel"] == kernel
    assert described["requested"] == "auto"
    assert list(described["chosen"].values()) == [kernel]
    assert described["tune_seconds"] >= 0


def test_flash_forced_math_kernel_is_used(registry):
    q, k, v = make_inputs(Shape(nq=5, nk=7, d=16))
    backend = build(registry, "flash", kernel="math")

    out = backend(q, k, v)

    assert backend.describe()["kernel"] == "math"
    torch.testing.assert_close(out.double(), reference_attention(q, k, v), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kernel", "dv"),
    [("efficient", 16), ("cudnn", 16), ("flash", 24)],
    ids=["efficient", "cudnn", "flash-with-Dv"],
)
def test_flash_forced_kernel_that_cannot_run_gives_a_reason(kernel, dv):
    q, k, v = make_inputs(Shape(nq=5, nk=7, d=16, dv=dv))
    mask = lengths_mask([7, 5, 2], 7)
    backend = FlashAttention(kernel=kernel)

    reason = backend.supports(q, k, v, mask)

    assert isinstance(reason, str)
    assert f"kernel={kernel}" in reason
    assert "cpu" in reason


def test_flash_kernel_option_is_validated(registry):
    spec = registry.backend("flash")

    assert build_options(spec.options, {"kernel": "efficient"}, "backend").kernel == "efficient"
    with pytest.raises(UserError, match=r"backend\.kernel='turbo'.*choose one of: auto, cudnn"):
        build_options(spec.options, {"kernel": "turbo"}, "backend")


@pytest.mark.parametrize("name", ALL)
def test_describe_is_a_json_friendly_dict(registry, name):
    backend = build(registry, name)
    q, k, v = make_inputs(Shape(nq=5, nk=7, d=16))
    backend(q, k, v)

    described = backend.describe()

    assert isinstance(described, dict)
    assert isinstance(described["kernel"], str) and described["kernel"]

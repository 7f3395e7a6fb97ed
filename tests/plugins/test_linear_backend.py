"""The ``linear`` backend against its own definition (normalised φ(q)φ(k)ᵀ computed densely
in float64), the mask contract, FAVOR+'s approximation of softmax, its random features,
and the linear memory that is the point of the backend."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import xbench_plugins.linear
from xbench.api.backend import QueryPositions
from xbench.api.errors import UserError
from xbench.api.options import build_options
from xbench.measure.memory import peak_memory_bytes
from xbench.registry import load_registry
from xbench.testing import Shape, lengths_mask, make_inputs, reference_attention
from xbench_plugins.linear import (
    LinearAttention,
    LinearMemory,
    LinearOptions,
    orthogonal_random_features,
)

MAPS = ("elu", "favor")


def build(**options) -> LinearAttention:
    """The backend as the registry builds it, from validated options."""
    return LinearAttention(**vars(build_options(LinearOptions, options, "backend")))


def linear_weights(backend, q, k, mask=None, scale=None, eps=0.0) -> torch.Tensor:
    """Normalised φ(q)φ(k)ᵀ in float64 with no stabilising shifts (small inputs only)."""
    q, k = q.double(), k.double()
    if backend.feature_map == "elu":
        phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    else:
        omega = backend.features.double()
        root = math.sqrt(1 / math.sqrt(q.shape[-1]) if scale is None else scale)

        def phi(x):
            x = x * root
            return torch.exp(x @ omega.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(
                omega.shape[0]
            )

        phi_q, phi_k = phi(q), phi(k)
    scores = phi_q @ phi_k.transpose(-2, -1)
    if mask is not None:
        scores = scores * mask[:, None, None, :]
    total = scores.sum(-1, keepdim=True).clamp_min(eps)
    return scores / torch.where(total > 0, total, 1.0)


# --- agreement with its own definition -------------------------------------------------------


@pytest.mark.parametrize("head_dim", [32, 64, 80, 128])
@pytest.mark.parametrize("feature_map", MAPS)
def test_matches_float64_definition(feature_map, head_dim):
    eps = 1e-6  # a floor far below the normaliser: the definition holds for both maps
    backend = build(feature_map=feature_map, eps=eps)
    q, k, v = (t * 0.5 for t in make_inputs(Shape(nq=5, nk=11, d=head_dim, dv=24)))
    mask = lengths_mask([11, 6, 1], 11)

    out = backend(q, k, v, key_padding_mask=mask)
    expected = linear_weights(backend, q, k, mask, eps=eps) @ v.double()

    assert out.shape == (3, 2, 5, 24) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-5)


def test_favor_uses_an_explicit_scale_and_elu_ignores_it():
    q, k, v = make_inputs(Shape(nq=4, nk=7, d=32, dv=8))
    favor = build(feature_map="favor", eps=0.0)
    out = favor(q, k, v, scale=0.05)
    expected = linear_weights(favor, q, k, scale=0.05) @ v.double()
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out, favor(q, k, v))

    elu = build(feature_map="elu")
    torch.testing.assert_close(elu(q, k, v, scale=0.05), elu(q, k, v))


def test_eps_floors_the_normaliser():
    q, k, v = make_inputs(Shape(nq=3, nk=4, d=8, batch=1))
    backend = build(feature_map="elu", eps=1e3)  # large enough to dominate φ(q)ᵀΣφ(k)
    expected = linear_weights(backend, q, k, eps=1e3) @ v.double()
    torch.testing.assert_close(backend(q, k, v).double(), expected, rtol=1e-5, atol=1e-7)


# --- the mask contract -----------------------------------------------------------------------


@pytest.mark.parametrize("feature_map", MAPS)
def test_padding_is_the_same_as_truncating_the_padded_keys(feature_map):
    backend = build(feature_map=feature_map)
    q, k, v = make_inputs(Shape(nq=6, nk=10, d=32, dv=20))
    real = [10, 7, 2]
    # Padded keys are garbage on purpose: huge values must not leak in through shifts.
    k[:, :, 7:] *= 100
    out = backend(q, k, v, key_padding_mask=lengths_mask(real, 10))

    for b, n in enumerate(real):
        alone = backend(q[b : b + 1], k[b : b + 1, :, :n], v[b : b + 1, :, :n])
        torch.testing.assert_close(out[b : b + 1], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 1e-6])
@pytest.mark.parametrize("feature_map", MAPS)
def test_fully_padded_item_gives_zeros_and_finite_gradients(feature_map, eps):
    backend = build(feature_map=feature_map, eps=eps)
    q, k, v = (t.requires_grad_() for t in make_inputs(Shape(nq=4, nk=6, d=16, dv=12)))
    mask = lengths_mask([6, 0, 3], 6)

    out = backend(q, k, v, key_padding_mask=mask)
    out.sum().backward()

    assert torch.isfinite(out).all()
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    assert out[0].abs().sum() > 0 and out[2].abs().sum() > 0
    for tensor in (q, k, v):
        assert torch.isfinite(tensor.grad).all()
    assert torch.equal(v.grad[1], torch.zeros_like(v.grad[1]))


@pytest.mark.parametrize("feature_map", MAPS)
def test_gradients_reach_q_k_and_v(feature_map):
    backend = build(feature_map=feature_map)
    q, k, v = (t.requires_grad_() for t in make_inputs(Shape(nq=5, nk=8, d=16, dv=8)))
    backend(q, k, v, key_padding_mask=lengths_mask([8, 5, 3], 8)).pow(2).sum().backward()
    for tensor in (q, k, v):
        assert torch.isfinite(tensor.grad).all()
        assert tensor.grad.abs().sum() > 0


@pytest.mark.parametrize("feature_map", MAPS)
def test_large_magnitude_inputs_stay_finite(feature_map):
    backend = build(feature_map=feature_map)
    q, k, v = (t * 30 for t in make_inputs(Shape(nq=16, nk=24, d=64)))
    q.requires_grad_(), k.requires_grad_(), v.requires_grad_()
    out = backend(q, k, v, key_padding_mask=lengths_mask([24, 13, 0], 24))
    out.sum().backward()
    assert torch.isfinite(out).all()
    for tensor in (q, k, v):
        assert torch.isfinite(tensor.grad).all()


# --- precision -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("feature_map", MAPS)
def test_half_precision_input_keeps_its_dtype_and_tracks_float32(feature_map, dtype):
    backend = build(feature_map=feature_map)
    q, k, v = make_inputs(Shape(nq=7, nk=12, d=64, dv=32))
    mask = lengths_mask([12, 8, 4], 12)
    low = backend(q.to(dtype), k.to(dtype), v.to(dtype), key_padding_mask=mask)
    full = backend(q, k, v, key_padding_mask=mask)
    assert low.dtype == dtype
    torch.testing.assert_close(low.float(), full, rtol=0.05, atol=0.05)


# --- FAVOR+ ----------------------------------------------------------------------------------


def test_favor_error_against_softmax_shrinks_with_more_features():
    q, k, v = (t * 0.25 for t in make_inputs(Shape(nq=16, nk=32, d=16, batch=2)))
    exact = reference_attention(q, k, v)

    def mean_error(num_features: int) -> float:
        errors = [
            (build(feature_map="favor", num_features=num_features, seed=s)(q, k, v) - exact)
            .abs()
            .mean()
            for s in range(4)
        ]
        return float(sum(errors) / len(errors))

    # Monte Carlo error falls like 1/sqrt(features): about 4x from 16 to 256.
    few, many = mean_error(16), mean_error(256)
    assert many < few / 2
    assert many < 0.1 * float(exact.abs().mean())


def test_favor_is_deterministic_for_a_seed_and_differs_between_seeds():
    q, k, v = make_inputs(Shape(nq=4, nk=6, d=32))
    first = build(feature_map="favor", seed=3)(q, k, v)
    again = build(feature_map="favor", seed=3)(q, k, v)
    other = build(feature_map="favor", seed=4)(q, k, v)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, other)


def test_redraw_changes_features_in_training_but_not_in_eval():
    q, k, v = make_inputs(Shape(nq=4, nk=6, d=32))
    backend = build(feature_map="favor", redraw=True).train()
    out_a = backend(q, k, v)
    features_a = backend.features.clone()
    out_b = backend(q, k, v)
    assert not torch.equal(features_a, backend.features)
    assert not torch.allclose(out_a, out_b)

    backend.eval()
    features_eval = backend.features.clone()
    out_c, out_d = backend(q, k, v), backend(q, k, v)
    assert torch.equal(features_eval, backend.features)
    torch.testing.assert_close(out_c, out_d, rtol=0, atol=0)


def test_without_redraw_training_calls_reuse_the_features():
    q, k, v = make_inputs(Shape(nq=4, nk=6, d=32))
    backend = build(feature_map="favor").train()
    out = backend(q, k, v)
    features = backend.features.clone()
    torch.testing.assert_close(backend(q, k, v), out, rtol=0, atol=0)
    assert torch.equal(features, backend.features)


def test_features_follow_the_head_dim_and_survive_a_checkpoint():
    backend = build(feature_map="favor", num_features=40, redraw=True).train()
    for d in (16, 32, 32):  # a new head dim redraws; the last call redraws again (training)
        q, k, v = make_inputs(Shape(nq=3, nk=5, d=d))
        backend(q, k, v)
    assert backend.features.shape == (40, 32)

    restored = build(feature_map="favor", num_features=40, redraw=True)
    restored.load_state_dict(backend.state_dict())
    backend.eval(), restored.eval()
    torch.testing.assert_close(restored(q, k, v), backend(q, k, v), rtol=0, atol=0)
    assert build(feature_map="elu").state_dict() == {}


@pytest.mark.parametrize("num, dim", [(64, 16), (40, 16), (7, 32)])
def test_orthogonal_random_features_are_orthogonal_blocks_with_chi_norms(num, dim):
    omega = orthogonal_random_features(num, dim, torch.Generator().manual_seed(0))
    assert omega.shape == (num, dim)
    directions = omega / omega.norm(dim=1, keepdim=True)
    for start in range(0, num, dim):
        block = directions[start : start + dim]
        torch.testing.assert_close(block @ block.T, torch.eye(len(block)), atol=1e-5, rtol=0)
    # Norms of D-dim Gaussian vectors: mean ≈ sqrt(D), not all equal (not merely orthonormal).
    norms = omega.norm(dim=1)
    assert norms.std() > 0.1
    assert abs(float(norms.mean()) - math.sqrt(dim)) < 0.35 * math.sqrt(dim)


# --- attention weights -----------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 1e-6])
@pytest.mark.parametrize("feature_map", MAPS)
def test_attention_weights_sum_to_one_over_real_keys_and_reproduce_forward(feature_map, eps):
    backend = build(feature_map=feature_map, eps=eps)
    q, k, v = make_inputs(Shape(nq=5, nk=9, d=32, dv=12))
    mask = lengths_mask([9, 4, 0], 9)

    weights = backend.attention_weights(q, k, v, mask)
    out = backend(q, k, v, key_padding_mask=mask)

    assert weights.shape == (3, 2, 5, 9)
    assert (weights >= 0).all()
    sums = weights[:2].sum(-1)
    torch.testing.assert_close(sums, torch.ones(2, 2, 5), rtol=0, atol=1e-5)
    assert torch.equal(weights[1, :, :, 4:], torch.zeros(2, 5, 5))
    assert torch.equal(weights[2], torch.zeros(2, 5, 9))
    torch.testing.assert_close(weights @ v, out, rtol=1e-5, atol=1e-6)


# --- the prepared memory: a decode step independent of Nk -------------------------------------


@pytest.mark.parametrize("feature_map", MAPS)
def test_prepare_folds_the_keys_into_a_state_whose_size_has_no_nk(feature_map):
    backend = build(feature_map=feature_map, num_features=48)
    features = 48 if feature_map == "favor" else 32
    for nk in (7, 300):
        _, k, v = make_inputs(Shape(nq=1, nk=nk, d=32, dv=20))
        memory = backend.prepare(k, v, lengths_mask([nk, nk // 2, 1], nk))

        assert isinstance(memory, LinearMemory)
        assert memory.state.shape == (3, 2, features, 20)
        assert memory.normaliser.shape == (3, 2, features)
        if feature_map == "favor":
            assert memory.omega.shape == (48, 32)
        else:
            assert memory.omega is None


@pytest.mark.parametrize("feature_map", MAPS)
def test_attend_never_reads_the_keys(feature_map):
    """attend uses S, z and ω only: swap the memory's keys, values and mask for ones of
    another Nk and the output does not move."""
    backend = build(feature_map=feature_map)
    q, k, v = make_inputs(Shape(nq=5, nk=40, d=32, dv=16))
    memory = backend.prepare(k, v, lengths_mask([40, 17, 3], 40))
    out = backend.attend(q, memory)

    _, k_other, v_other = make_inputs(Shape(nq=1, nk=3, d=32, dv=16), seed=9, magnitude=50.0)
    stripped = replace(memory, k=k_other, v=v_other, key_padding_mask=None)

    assert torch.equal(backend.attend(q, stripped), out)


@pytest.mark.parametrize("feature_map", MAPS)
def test_a_decode_step_costs_the_same_flops_whatever_nk(feature_map):
    backend = build(feature_map=feature_map)

    def step_flops(nk: int) -> int:
        q, k, v = make_inputs(Shape(nq=1, nk=nk, d=64, dv=64, batch=2, heads=4))
        memory = backend.prepare(k, v)
        with FlopCounterMode(display=False) as counter:
            backend.attend(q, memory, QueryPositions(start=3, total=10))
        return counter.get_total_flops()

    short, long = step_flops(16), step_flops(4096)
    assert short == long > 0


@pytest.mark.parametrize("feature_map", MAPS)
def test_decode_steps_equal_the_teacher_forced_rows(feature_map):
    backend = build(feature_map=feature_map)
    q, k, v = make_inputs(Shape(nq=6, nk=11, d=32, dv=8))
    memory = backend.prepare(k, v, lengths_mask([11, 4, 0], 11))

    whole = backend.attend(q, memory, QueryPositions(start=0, total=9))

    torch.testing.assert_close(whole, backend(q, k, v, lengths_mask([11, 4, 0], 11)))
    for i in range(6):
        step = backend.attend(q[:, :, i : i + 1], memory, QueryPositions(start=i, total=9))
        torch.testing.assert_close(step, whole[:, :, i : i + 1], rtol=1e-6, atol=1e-7)


def test_a_training_redraw_happens_once_per_prepare():
    backend = build(feature_map="favor", redraw=True).train()
    q, k, v = make_inputs(Shape(nq=4, nk=6, d=32))
    memory = backend.prepare(k, v)
    drawn = backend.features.clone()

    first, again = backend.attend(q, memory), backend.attend(q, memory)

    assert torch.equal(first, again)  # every query of the source: the same features
    assert torch.equal(backend.features, drawn) and torch.equal(memory.omega, drawn)
    other = backend.prepare(k, v)
    assert not torch.equal(other.omega, memory.omega)
    assert not torch.allclose(backend.attend(q, other), first)


@pytest.mark.parametrize("feature_map", MAPS)
def test_select_slices_the_state_and_keeps_the_shared_features(feature_map):
    backend = build(feature_map=feature_map)
    q, k, v = make_inputs(Shape(nq=3, nk=8, d=32, dv=12))
    mask = lengths_mask([8, 5, 2], 8)
    memory = backend.prepare(k, v, mask)
    index = torch.tensor([2, 2, 0])

    picked = memory.select(index)

    assert isinstance(picked, LinearMemory) and picked.omega is memory.omega
    assert torch.equal(picked.state, memory.state[index])
    assert torch.equal(picked.key_padding_mask, mask[index])
    torch.testing.assert_close(backend.attend(q[index], picked), backend.attend(q, memory)[index])


@pytest.mark.parametrize("feature_map", MAPS)
def test_attend_weights_of_a_prepared_memory_are_the_dense_weights(feature_map):
    backend = build(feature_map=feature_map, eps=0.0)
    q, k, v = make_inputs(Shape(nq=4, nk=9, d=32, dv=12))
    mask = lengths_mask([9, 4, 0], 9)
    memory = backend.prepare(k, v, mask)

    weights = backend.attend_weights(q, memory, QueryPositions(start=2, total=8))

    expected = linear_weights(backend, q, k, mask)
    torch.testing.assert_close(weights.double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(weights @ v, backend.attend(q, memory), rtol=1e-5, atol=1e-6)


# --- memory ----------------------------------------------------------------------------------


@pytest.mark.parametrize("feature_map", MAPS)
def test_memory_is_linear_in_sequence_length(feature_map):
    batch, heads, n, d = 1, 4, 16384, 64
    q, k, v = make_inputs(Shape(nq=n, nk=n, d=d, batch=batch, heads=heads))
    mask = torch.ones(batch, n, dtype=torch.bool)
    backend = build(feature_map=feature_map)

    with torch.no_grad():
        peak = peak_memory_bytes(lambda: backend(q, k, v, key_padding_mask=mask), q.device)

    score_matrix = batch * heads * n * n * 4  # 4 GiB in float32
    assert 0 < peak < 2**30
    assert peak < score_matrix / 4


# --- plugin surface --------------------------------------------------------------------------


def test_registers_through_the_plugin_hook():
    registry = load_registry(
        extra_plugins=[("linear", xbench_plugins.linear)], use_entry_points=False
    )
    spec = registry.backend("linear")
    assert spec.exact is False and spec.options is LinearOptions
    assert "\n" not in spec.description

    backend = spec.build(build_options(spec.options, {"feature_map": "favor", "seed": 2}, "b"))
    q, k, v = make_inputs(Shape(nq=3, nk=4, d=16))
    backend(q, k, v)
    assert backend.describe() == {"kernel": "linear", "feature_map": "favor", "num_features": 64}
    assert backend.supports(q, k, v) is None


def test_describe_reports_the_elu_feature_dim_that_ran():
    backend = build()
    assert backend.describe()["feature_map"] == "elu"
    backend(*make_inputs(Shape(nq=5, nk=9, d=24)))
    assert backend.describe() == {"kernel": "linear", "feature_map": "elu", "num_features": 24}


@pytest.mark.parametrize(
    "options, named",
    [
        ({"feature_map": "relu"}, "feature_map"),
        ({"num_features": 0}, "num_features"),
        ({"eps": -1.0}, "eps"),
        ({"redraw": "yes"}, "redraw"),
    ],
)
def test_bad_options_are_rejected_with_the_field_named(options, named):
    with pytest.raises(UserError, match=f"backend.{named}"):
        build_options(LinearOptions, options, "backend")


def test_supports_gives_a_reason_for_integer_input_and_never_raises():
    q = torch.zeros(1, 1, 2, 4, dtype=torch.long)
    reason = build().supports(q, q, q)
    assert isinstance(reason, str) and "floating-point" in reason

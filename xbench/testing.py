"""The conformance kit: a pytest suite that a backend author subclasses to show that a
backend keeps the contract of :mod:`xbench.api.backend` (the model is pandas' extension base
tests). Passing it is what lets a backend's figures sit next to the others on a leaderboard.

Use it from any test module::

    from xbench.testing import BackendConformance

    class TestMyAttention(BackendConformance):
        backend_name = "my_attention"  # as registered; built with default options

or without writing a file: ``xbench check-backend my_attention``.

What a subclass may set (class attributes, all optional except ``backend_name``):

- ``options``: option values (a mapping) to build the backend with; default: defaults.
  Override ``make_backend(self)`` instead for full control.
- ``extra_plugins``: ``(name, plugin)`` pairs registered in-process, for a backend that is
  not installed yet (loaded after the installed entry points).
- ``uses_queries = True``: False for a backend that ignores q and k (a control such as
  ``uniform``); q and k then need no gradient.
- ``padding_equals_truncation = True``: False for a backend whose layout depends on Nk
  (e.g. block-sparse windows): padding a batch may then legitimately change which keys a
  query sees, so "padded output == output on the truncated keys" is not required. Padded
  keys must still have no influence; that test always runs. Opting out removes the test
  from the subclass (nothing is collected, so nothing is skipped).
- ``weights_normalised = True``: False when ``attention_weights`` rows need not sum to 1
  (e.g. sigmoid attention). They must still be 0 on padded keys.
- ``tolerances``: ``{dtype: (rtol, atol)}`` used when comparing outputs.

How a backend is checked against its definition: an exact backend (``BackendSpec.exact``)
must match the kit's float64 masked softmax; an approximation must match
``attention_weights(q, k, v, mask) @ v`` computed in float64 by a float64 copy of itself.
Override ``expected_output`` when a backend's definition is not of that form (and
``expected_attend``, its counterpart for queries at given positions).

The static-memory contract (``prepare`` / ``attend`` / ``attend_weights``, see
:mod:`xbench.api.backend`) has its own cases, which a backend that implements only
``forward`` passes through the defaults: ``attend(q, prepare(k, v, mask, scale))`` equals
``forward`` (with and without padding, with fully padded items, with an explicit scale);
``memory.select(index)`` serves items ``index``; decoding one row at a time at
``QueryPositions(i, total)`` equals row ``i`` of the teacher-forced pass at
``QueryPositions(0, total)``, for ``total`` equal to Nq and beyond it; gradients reach q, k
and v through ``prepare`` and ``attend`` and equal forward's; and ``attend`` at any positions
matches ``attend_weights(q, memory, positions) @ v`` (an exact backend: softmax attention).

For an approximation (``exact=False``) that is **only a self-consistency check**: the kit
cannot know what the backend is meant to approximate, so a top-k that keeps the *lowest*
scores passes as long as its ``attention_weights`` say so. How far it is from softmax
attention is reported, not judged: :func:`deviation_from_exact` measures it at
:data:`DEVIATION_SHAPE`, ``test_reports_its_deviation_from_exact_attention`` records it
(``record_property``, e.g. in ``--junitxml``) and ``xbench check-backend`` prints it.

The building blocks are public for a backend's own tests: :class:`Shape`, :class:`Case`,
:func:`make_inputs`, :func:`lengths_mask`, :func:`partial_lengths`, :func:`empty_lengths`,
:func:`reference_attention`, :func:`reference_weights`, and :func:`registered` (which
plugin and distribution supplied an installed backend or task).

Every case runs in float32 and bfloat16 on CPU; when CUDA is available the device-dependent
cases are also generated for CUDA in float32, bfloat16 and float16 (they do not exist, and
so are neither run nor skipped, on a machine without CUDA). When ``supports()`` gives a
reason for a case's input, the backend has declared that input out of scope: the case is
skipped with that reason and forward is not called. Nothing else is skipped.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pytest
import torch
from torch import Tensor

from xbench.api.backend import (
    AttentionBackend,
    BackendSpec,
    PreparedMemory,
    QueryPositions,
    default_scale,
    describe_problem,
)
from xbench.api.options import build_options
from xbench.measure.inputs import lengths_mask
from xbench.registry import Registered, Registry, get_registry, load_registry

__all__ = [
    "CPU_FLOAT32",
    "DEFAULT_TOLERANCES",
    "DEVIATION_SHAPE",
    "BackendConformance",
    "Case",
    "Deviation",
    "Shape",
    "deviation_from_exact",
    "empty_lengths",
    "lengths_mask",
    "make_inputs",
    "partial_lengths",
    "reference_attention",
    "reference_weights",
    "registered",
]

# (rtol, atol) against a float64 result computed from the same (rounded) inputs.
DEFAULT_TOLERANCES: Mapping[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-9, 1e-9),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (5e-3, 5e-3),
    torch.bfloat16: (3e-2, 3e-2),
}
LARGE = 30.0  # input magnitude of the overflow case: scores of order LARGE² · sqrt(D)


@dataclass(frozen=True)
class Case:
    """Where and in which precision a test runs."""

    device: str
    dtype: torch.dtype

    @property
    def id(self) -> str:
        return f"{self.device}-{str(self.dtype).removeprefix('torch.')}"


@dataclass(frozen=True)
class Shape:
    """One input geometry: q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv); Dv = D
    unless given."""

    nq: int
    nk: int
    d: int
    dv: int = None  # type: ignore[assignment]  # set to d below
    batch: int = 3
    heads: int = 2

    def __post_init__(self) -> None:
        if self.dv is None:
            object.__setattr__(self, "dv", self.d)

    @property
    def id(self) -> str:
        return f"Nq{self.nq}-Nk{self.nk}-D{self.d}-Dv{self.dv}"


def _cases() -> list[Case]:
    """float32 and bfloat16 on CPU; with CUDA, float32, bfloat16 and float16 there too."""
    cases = [Case("cpu", torch.float32), Case("cpu", torch.bfloat16)]
    if torch.cuda.is_available():
        cases += [Case("cuda", t) for t in (torch.float32, torch.bfloat16, torch.float16)]
    return cases


CPU_FLOAT32 = Case("cpu", torch.float32)
CASES = [pytest.param(c, id=c.id) for c in _cases()]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# Nq != Nk both ways, Nq = 1, head dims 32/64/80/128, Dv != D both ways, Nq == Nk.
SHAPES = [
    pytest.param(s, id=s.id)
    for s in (
        Shape(nq=5, nk=9, d=32, dv=32),
        Shape(nq=1, nk=7, d=64, dv=64),
        Shape(nq=6, nk=6, d=80, dv=48),
        Shape(nq=4, nk=11, d=128, dv=128),
        Shape(nq=7, nk=3, d=32, dv=16),
    )
]
BASE = Shape(nq=5, nk=8, d=32, dv=32)
# The decoding cases: Nq query rows that are the first columns of ``total`` decoder columns
# (total = Nq: the whole target; total > Nq: the target is shorter than the budget).
DECODE_SHAPE = Shape(nq=6, nk=12, d=32, dv=24)
DECODE_TOTALS = {"total=Nq": DECODE_SHAPE.nq, "total>Nq": 2 * DECODE_SHAPE.nq - 1}
# Query rows [lo, hi) computed apart: every single step, and a prompt-like chunk.
DECODE_PIECES = [(i, i + 1) for i in range(DECODE_SHAPE.nq)] + [(1, 4)]
# Inputs a backend may well refuse, but must answer about without raising.
ODD_INPUTS = {
    "Dv!=D": (Shape(nq=4, nk=6, d=32, dv=24), torch.float32, "partial"),
    "Nq=1": (Shape(nq=1, nk=6, d=32, dv=32), torch.float32, "partial"),
    "Nk=1": (Shape(nq=4, nk=1, d=32, dv=32), torch.float32, "none"),
    "D=8": (Shape(nq=4, nk=6, d=8, dv=8), torch.float32, "partial"),
    "D=96-Dv=40": (Shape(nq=3, nk=5, d=96, dv=40), torch.float32, "partial"),
    "bfloat16": (BASE, torch.bfloat16, "partial"),
    "float16": (BASE, torch.float16, "partial"),
    "float64": (BASE, torch.float64, "partial"),
    "no-mask": (BASE, torch.float32, "none"),
    "all-padded": (BASE, torch.float32, "empty"),
}


def reference_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    key_padding_mask: Tensor | None = None,
    scale: float | None = None,
) -> Tensor:
    """Masked softmax attention in float64, written independently of any backend."""
    return reference_weights(q, k, key_padding_mask, scale) @ v.double()


def reference_weights(
    q: Tensor, k: Tensor, key_padding_mask: Tensor | None = None, scale: float | None = None
) -> Tensor:
    """float64 softmax over real keys; 0 on padded keys and on rows with no real key."""
    q64, k64 = q.double(), k.double()
    scores = q64 @ k64.transpose(-2, -1) * default_scale(q, scale)
    if key_padding_mask is None:
        return torch.softmax(scores, dim=-1)
    real = key_padding_mask[:, None, None, :]
    scores = scores.masked_fill(~real, float("-inf"))
    has_key = real.any(dim=-1, keepdim=True)
    weights = torch.softmax(scores.masked_fill(~has_key, 0.0), dim=-1)
    return torch.where(real & has_key, weights, torch.zeros_like(weights))


def make_inputs(
    shape: Shape, case: Case = CPU_FLOAT32, seed: int = 0, magnitude: float = 1.0
) -> tuple[Tensor, Tensor, Tensor]:
    """Deterministic q, k, v (drawn in float32 on CPU, then cast and moved)."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*size: int) -> Tensor:
        drawn = torch.randn(*size, generator=generator) * magnitude
        return drawn.to(device=case.device, dtype=case.dtype)

    b, h = shape.batch, shape.heads
    return (
        randn(b, h, shape.nq, shape.d),
        randn(b, h, shape.nk, shape.d),
        randn(b, h, shape.nk, shape.dv),
    )


def partial_lengths(shape: Shape) -> list[int]:
    """Item 0 unpadded, item 1 half padded, the rest with one real key."""
    return [shape.nk, (shape.nk + 1) // 2] + [1] * (shape.batch - 2)


def empty_lengths(shape: Shape) -> list[int]:
    """Like :func:`partial_lengths`, but item 1 has no real key at all."""
    return [shape.nk, 0] + [max(1, shape.nk // 2)] * (shape.batch - 2)


PADDINGS = {"padded": partial_lengths, "no-mask": None, "fully-padded": empty_lengths}


def _padding_mask(padding: str, shape: Shape, device: str) -> Tensor | None:
    lengths = PADDINGS[padding]
    return None if lengths is None else lengths_mask(lengths(shape), shape.nk, device)


# Where the deviation of a backend from exact attention is measured: item 0 unpadded,
# item 1 with half its keys padded (see :func:`partial_lengths`).
DEVIATION_SHAPE = Shape(nq=64, nk=256, d=64, dv=64, batch=2, heads=4)


@dataclass(frozen=True)
class Deviation:
    """How far a backend's output and weights are from float64 masked softmax attention:
    the largest absolute difference and the relative error ‖got − exact‖ / ‖exact‖. For
    scale, ``control_relative`` is the output's relative error of equal weights on every
    real key (the ``uniform`` control) on the same inputs."""

    shape: Shape
    case: Case
    output_max_abs: float
    output_relative: float
    weights_max_abs: float
    weights_relative: float
    control_relative: float

    def __str__(self) -> str:
        s = self.shape
        return (
            f"deviation from exact masked softmax attention at B={s.batch} H={s.heads} "
            f"Nq={s.nq} Nk={s.nk} D={s.d} Dv={s.dv} ({self.case.id}, seeded N(0, 1) inputs, "
            f"half the keys of one item padded): output max abs {self.output_max_abs:.3g}, "
            f"relative {self.output_relative:.3g}; attention_weights max abs "
            f"{self.weights_max_abs:.3g}, relative {self.weights_relative:.3g} "
            f"(equal weights on the real keys: relative {self.control_relative:.3g})"
        )


def deviation_from_exact(
    backend: AttentionBackend,
    shape: Shape = DEVIATION_SHAPE,
    case: Case = CPU_FLOAT32,
    seed: int = 0,
) -> Deviation:
    """Run ``backend`` (forward and ``attention_weights``, no gradients) on seeded inputs of
    ``shape`` and compare both with :func:`reference_attention` / :func:`reference_weights`.

    Raises ValueError with the backend's reason when it does not support the input.
    """
    q, k, v = make_inputs(shape, case, seed=seed)
    mask = lengths_mask(partial_lengths(shape), shape.nk, case.device)
    backend = backend.to(device=case.device, dtype=case.dtype)
    reason = backend.supports(q, k, v, mask)
    if reason is not None:
        raise ValueError(f"unsupported input for the deviation report: {reason}")
    with torch.no_grad():
        out = backend(q, k, v, key_padding_mask=mask).double()
        weights = backend.attention_weights(q, k, v, mask).double()
    exact_out, exact_weights = reference_attention(q, k, v, mask), reference_weights(q, k, mask)
    real = mask.double()[:, None, None, :]
    control = (real / real.sum(-1, keepdim=True)) @ v.double()
    return Deviation(
        shape,
        case,
        *_difference(out, exact_out),
        *_difference(weights, exact_weights),
        control_relative=_difference(control, exact_out)[1],
    )


def _difference(got: Tensor, exact: Tensor) -> tuple[float, float]:
    """(max |got − exact|, ‖got − exact‖ / ‖exact‖)."""
    error = got - exact
    return error.abs().max().item(), (error.norm() / exact.norm().clamp_min(1e-300)).item()


def registered(
    kind: Literal["backend", "task"], name: str, extra_plugins: Sequence[tuple[str, Any]] = ()
) -> Registered:
    """The registry entry of an installed backend or task: its ``spec`` and the ``plugin``,
    ``distribution`` and ``version`` that supplied it (for a plugin's own tests)."""
    registry = _registry(tuple(extra_plugins))
    getattr(registry, kind)(name)  # an unknown name: UserError listing the installed ones
    return getattr(registry, f"{kind}s")[name]


@functools.cache
def _registry(extra_plugins: tuple[tuple[str, Any], ...]) -> Registry:
    return load_registry(extra_plugins=extra_plugins) if extra_plugins else get_registry()


class BackendConformance:
    """Subclass as ``Test<Something>`` and set ``backend_name``; see the module docstring.

    The name has no ``Test`` prefix so that pytest collects only the subclasses.
    """

    backend_name: str
    options: Mapping[str, Any] | None = None
    extra_plugins: Sequence[tuple[str, Any]] = ()
    uses_queries: bool = True
    padding_equals_truncation: bool = True
    weights_normalised: bool = True
    tolerances: Mapping[torch.dtype, tuple[float, float]] = DEFAULT_TOLERANCES

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.padding_equals_truncation:
            cls.test_padding_equals_truncation = None  # not collected: no silent skip

    # -- how the backend under test is built and judged (override to customise) -------------

    def backend_spec(self) -> BackendSpec:
        """The registered spec: its ``exact`` flag decides what the output is compared with."""
        name = getattr(self, "backend_name", None)
        if not name:
            raise TypeError(f"{type(self).__name__} must set the class attribute backend_name")
        return _registry(tuple(self.extra_plugins)).backend(name)

    def make_backend(self) -> AttentionBackend:
        """Built as ``xbench run`` builds it: the options validated, then ``spec.build``."""
        spec = self.backend_spec()
        return spec.build(build_options(spec.options, self.options, "backend"))

    def expected_output(
        self,
        backend: AttentionBackend,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None,
        scale: float | None = None,
    ) -> Tensor:
        """What forward should return, in float64: the definition the backend claims."""
        if self.backend_spec().exact:
            return reference_attention(q, k, v, mask, scale)
        dense = copy.deepcopy(backend).to(torch.float64)
        q64, k64, v64 = q.double(), k.double(), v.double()
        with torch.no_grad():
            weights = dense.attention_weights(q64, k64, v64, mask, **_scale_kwarg(scale))
        return weights @ v64

    def expected_attend(
        self,
        backend: AttentionBackend,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None,
        positions: QueryPositions,
    ) -> Tensor:
        """What ``attend(q, prepare(k, v, mask), positions)`` should return, in float64:
        softmax attention for an exact backend, else ``attend_weights(...) @ v``."""
        if self.backend_spec().exact:
            return reference_attention(q, k, v, mask)
        dense = copy.deepcopy(backend).to(torch.float64)
        q64, k64, v64 = q.double(), k.double(), v.double()
        with torch.no_grad():
            weights = dense.attend_weights(q64, dense.prepare(k64, v64, mask), positions)
        return weights @ v64

    @pytest.fixture
    def backend(self) -> AttentionBackend:
        """A fresh backend per test, in eval mode (a kernel with dropout must be repeatable)."""
        return self.make_backend().eval()

    # -- helpers ------------------------------------------------------------------------------

    def tolerance(self, dtype: torch.dtype) -> dict[str, float]:
        rtol, atol = self.tolerances[dtype]
        return {"rtol": rtol, "atol": atol}

    def on(self, backend: AttentionBackend, case: Case) -> AttentionBackend:
        """The backend moved to the case's device and precision (like a model cast to it)."""
        return backend.to(device=case.device, dtype=case.dtype)

    def require_support(
        self, backend: AttentionBackend, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None
    ) -> None:
        """Skip the case, with the backend's own reason, when it declares the input unsupported."""
        reason = backend.supports(q, k, v, mask)
        _check_reason(reason)
        if reason is not None:
            pytest.skip(f"{self.backend_name} declares this input unsupported: {reason}")

    def checked_forward(
        self,
        backend: AttentionBackend,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None,
        scale: float | None = None,
    ) -> Tensor:
        self.require_support(backend, q, k, v, mask)
        return backend(q, k, v, key_padding_mask=mask, **_scale_kwarg(scale))

    def prepared_attend(
        self,
        backend: AttentionBackend,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None,
        scale: float | None = None,
    ) -> Tensor:
        """``attend(q, prepare(k, v, mask, scale))``, the model's path to the same output."""
        self.require_support(backend, q, k, v, mask)
        return backend.attend(q, backend.prepare(k, v, mask, **_scale_kwarg(scale)))

    # -- the contract -------------------------------------------------------------------------

    def test_supports_a_plain_float32_input(self, backend):
        """Without this a backend refusing every input would pass the kit by skipping it all."""
        reasons = {}
        for device in DEVICES:
            case = Case(device, torch.float32)
            q, k, v = make_inputs(BASE, case)
            mask = lengths_mask(partial_lengths(BASE), BASE.nk, device)
            reasons[device] = self.on(backend, case).supports(q, k, v, mask)
            _check_reason(reasons[device])
        assert None in reasons.values(), f"no float32 input is supported anywhere: {reasons}"

    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("case", CASES)
    def test_output_shape_and_dtype(self, backend, case, shape):
        q, k, v = make_inputs(shape, case)
        mask = lengths_mask(partial_lengths(shape), shape.nk, case.device)

        out = self.checked_forward(self.on(backend, case), q, k, v, mask)

        assert out.shape == (shape.batch, shape.heads, shape.nq, shape.dv)
        assert out.dtype == case.dtype
        assert out.device.type == case.device

    @pytest.mark.parametrize("masked", [True, False], ids=["padded", "no-mask"])
    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("case", CASES)
    def test_matches_its_definition(self, backend, case, shape, masked):
        q, k, v = make_inputs(shape, case, seed=shape.d)
        mask = lengths_mask(partial_lengths(shape), shape.nk, case.device) if masked else None
        backend = self.on(backend, case)

        out = self.checked_forward(backend, q, k, v, mask)

        expected = self.expected_output(backend, q, k, v, mask)
        self.assert_matches_definition(out, expected, case)

    @pytest.mark.parametrize("case", CASES)
    def test_honours_an_explicit_scale(self, backend, case):
        q, k, v = make_inputs(BASE, case, seed=1)
        mask = lengths_mask(partial_lengths(BASE), BASE.nk, case.device)
        backend = self.on(backend, case)

        out = self.checked_forward(backend, q, k, v, mask, scale=0.3)

        expected = self.expected_output(backend, q, k, v, mask, scale=0.3)
        self.assert_matches_definition(out, expected, case, scale=0.3)

    def assert_matches_definition(
        self,
        out: Tensor,
        expected: Tensor,
        case: Case,
        scale: float | None = None,
        positions: QueryPositions | None = None,
    ) -> None:
        """``out`` is ``expected`` within the case's tolerance; a failure says which method
        disagrees with which and what to override."""
        called = "forward()" if scale is None else f"forward(..., scale={scale})"
        if positions is not None:
            called = f"attend(q, memory, {positions})"
        if self.backend_spec().exact:
            hint = (
                f"{called} differs from exact masked softmax attention, which the BackendSpec "
                "claims (exact=True). A backend that approximates softmax attention must "
                "register with exact=False and override attention_weights() to return the "
                "weights its forward() applies."
            )
        elif positions is not None:
            hint = (
                f"{called} differs from attend_weights(q, memory, positions) @ v, the "
                "definition the kit checks an exact=False backend's attend against: a backend "
                "whose attend() depends on the positions must override attend_weights() to "
                "apply the same positions (the default ignores them and calls "
                "attention_weights), or the test class's expected_attend()."
            )
        else:
            hint = (
                f"{called} differs from attention_weights(...) @ v, the definition the kit "
                "checks an exact=False backend against. attention_weights() must return the "
                "weights forward() applies, with the same scale: override it (the inherited "
                "AttentionBackend.attention_weights is exact masked softmax), or override the "
                "test class's expected_output() when the definition is not weights @ v."
            )
        torch.testing.assert_close(
            out.double(), expected, **self.tolerance(case.dtype), msg=lambda m: f"{hint}\n{m}"
        )

    @pytest.mark.parametrize("case", CASES)
    def test_padded_keys_have_no_influence(self, backend, case):
        q, k, v = make_inputs(BASE, case, seed=2)
        mask = lengths_mask(partial_lengths(BASE), BASE.nk, case.device)
        backend = self.on(backend, case)
        out = self.checked_forward(backend, q, k, v, mask)

        _, other_k, other_v = make_inputs(BASE, case, seed=3, magnitude=10.0)
        padded = ~mask[:, None, :, None]
        out_other = backend(
            q, torch.where(padded, other_k, k), torch.where(padded, other_v, v), mask
        )

        torch.testing.assert_close(out_other, out, **self.tolerance(case.dtype))

    @pytest.mark.parametrize("case", CASES)
    def test_padding_equals_truncation(self, backend, case):
        shape = Shape(nq=5, nk=10, d=32, dv=24)
        q, k, v = make_inputs(shape, case, seed=4)
        lengths = [10, 6, 3]
        backend = self.on(backend, case)
        out = self.checked_forward(backend, q, k, v, lengths_mask(lengths, shape.nk, case.device))

        for b, n in enumerate(lengths):
            alone = backend(q[b : b + 1], k[b : b + 1, :, :n], v[b : b + 1, :, :n])
            torch.testing.assert_close(
                out[b : b + 1], alone, **self.tolerance(case.dtype), msg=lambda m, b=b: f"{b}: {m}"
            )

    def forward_backward(
        self, backend, case, lengths, seed: int, magnitude: float = 1.0, prepared: bool = False
    ):
        """Forward (or, ``prepared``, attend against prepare) on BASE inputs with these key
        lengths, then backward a random gradient (drawn with ``seed + 1``); returns the
        output and the (q, k, v) leaves."""
        q, k, v = make_inputs(BASE, case, seed=seed, magnitude=magnitude)
        q, k, v = (t.requires_grad_() for t in (q, k, v))
        mask = lengths_mask(lengths, BASE.nk, case.device)
        run = self.prepared_attend if prepared else self.checked_forward
        out = run(self.on(backend, case), q, k, v, mask)
        out.backward(_like(out, seed=seed + 1))
        return out, (q, k, v)

    @pytest.mark.parametrize("case", CASES)
    def test_fully_padded_item_gives_zeros_and_finite_gradients(self, backend, case):
        out, (q, k, v) = self.forward_backward(backend, case, empty_lengths(BASE), seed=5)

        assert torch.isfinite(out).all(), "forward gave NaN or Inf"
        assert torch.equal(out[1], torch.zeros_like(out[1])), "an item with no real key must be 0"
        for name, t in (("q", q), ("k", k), ("v", v)):
            if t.grad is None:
                continue
            assert torch.isfinite(t.grad).all(), f"{name}.grad has NaN or Inf"
            assert torch.equal(t.grad[1], torch.zeros_like(t.grad[1])), f"{name}.grad of item 1"

    @pytest.mark.parametrize("case", CASES)
    def test_large_inputs_stay_finite(self, backend, case):
        out, (q, k, v) = self.forward_backward(
            backend, case, empty_lengths(BASE), seed=7, magnitude=LARGE
        )

        assert torch.isfinite(out).all(), f"forward overflowed for inputs of size {LARGE}"
        for name, t in (("q", q), ("k", k), ("v", v)):
            assert t.grad is None or torch.isfinite(t.grad).all(), f"{name}.grad overflowed"

    @pytest.mark.parametrize("case", CASES)
    def test_gradients_reach_q_k_v_but_not_padded_keys(self, backend, case):
        lengths = partial_lengths(BASE)
        _, leaves = self.forward_backward(backend, case, lengths, seed=9)

        self.assert_gradients_reach(leaves, lengths, case)

    def assert_gradients_reach(
        self, leaves: Sequence[Tensor], lengths: Sequence[int], case: Case
    ) -> None:
        """q, k and v (only v when ``uses_queries`` is False) got finite, non-zero
        gradients, and padded keys none."""
        q, k, v = leaves
        must_flow = ("q", "k", "v") if self.uses_queries else ("v",)
        for name, t in (("q", q), ("k", k), ("v", v)):
            if name in must_flow:
                assert t.grad is not None, f"no gradient reaches {name}"
                assert t.grad.abs().sum() > 0, f"the gradient of {name} is all zeros"
            if t.grad is not None:
                assert torch.isfinite(t.grad).all(), f"{name}.grad has NaN or Inf"
        padded = ~lengths_mask(lengths, BASE.nk, case.device)[:, None, :, None]
        for name, t in (("k", k), ("v", v)):
            if t.grad is not None:
                leaked = t.grad.masked_select(padded.expand_as(t.grad))
                assert torch.equal(leaked, torch.zeros_like(leaked)), f"padded {name} got gradient"

    @pytest.mark.parametrize("case", CASES)
    def test_gradients_flow_through_prepare_and_attend(self, backend, case):
        """The model trains through prepare + attend: the gradients must be forward's."""
        lengths = partial_lengths(BASE)
        _, leaves = self.forward_backward(backend, case, lengths, seed=9, prepared=True)
        _, forward_leaves = self.forward_backward(backend, case, lengths, seed=9)

        self.assert_gradients_reach(leaves, lengths, case)
        for name, got, expected in zip("qkv", leaves, forward_leaves, strict=True):
            assert (got.grad is None) == (expected.grad is None), (
                f"{name} gets a gradient through one of forward() and prepare() + attend() only"
            )
            if got.grad is not None:
                torch.testing.assert_close(
                    got.grad,
                    expected.grad,
                    **self.tolerance(case.dtype),
                    msg=lambda m, name=name: (
                        f"{name}.grad through prepare() + attend() "
                        f"differs from {name}.grad through forward()\n{m}"
                    ),
                )

    @pytest.mark.parametrize("padding", list(PADDINGS))
    @pytest.mark.parametrize("case", CASES)
    def test_prepared_memory_gives_the_forward_output(self, backend, case, padding):
        q, k, v = make_inputs(BASE, case, seed=17)
        mask = _padding_mask(padding, BASE, case.device)
        backend = self.on(backend, case)

        for scale in (None, 0.3):
            out = self.checked_forward(backend, q, k, v, mask, scale)
            prepared = self.prepared_attend(backend, q, k, v, mask, scale)

            given = "" if scale is None else f", scale={scale}"
            hint = (
                f"attend(q, prepare(k, v, mask{given})) differs from forward(q, k, v, mask"
                f"{given}): a backend that overrides prepare() must override attend() to read "
                "its memory, and forward() is best written as attend(q, prepare(...))"
            )
            torch.testing.assert_close(
                prepared, out, **self.tolerance(case.dtype), msg=lambda m, h=hint: f"{h}\n{m}"
            )

    @pytest.mark.parametrize("case", CASES)
    def test_selected_memory_serves_the_selected_items(self, backend, case):
        """``memory.select(index)`` (beam search, dropping finished items) is the memory of
        those items: a subclass whose state is not batch-first must override ``select``."""
        q, k, v = make_inputs(BASE, case, seed=19)
        mask = lengths_mask([8, 5, 2], BASE.nk, case.device)
        backend = self.on(backend, case)
        out = self.prepared_attend(backend, q, k, v, mask)
        index = torch.tensor([2, 0, 0], device=case.device)

        memory = backend.prepare(k, v, mask).select(index)
        picked = backend.attend(q.index_select(0, index), memory)

        assert isinstance(memory, PreparedMemory) and memory.batch == len(index)
        torch.testing.assert_close(picked, out.index_select(0, index), **self.tolerance(case.dtype))

    @pytest.mark.parametrize("total", list(DECODE_TOTALS))
    @pytest.mark.parametrize("case", CASES)
    def test_decoding_step_by_step_equals_the_teacher_forced_pass(self, backend, case, total):
        """A token sees the same attention alone (cached decoding) as with the whole target."""
        columns = DECODE_TOTALS[total]
        q, k, v = make_inputs(DECODE_SHAPE, case, seed=21)
        mask = lengths_mask(partial_lengths(DECODE_SHAPE), DECODE_SHAPE.nk, case.device)
        backend = self.on(backend, case)
        self.require_support(backend, q, k, v, mask)
        self.require_support(backend, q[:, :, :1], k, v, mask)
        memory = backend.prepare(k, v, mask)

        whole = backend.attend(q, memory, QueryPositions(0, columns))

        if columns == DECODE_SHAPE.nq:
            torch.testing.assert_close(
                whole,
                backend.attend(q, memory),
                **self.tolerance(case.dtype),
                msg=lambda m: (
                    f"attend at QueryPositions.whole(Nq) differs from attend without "
                    f"positions (forward's case)\n{m}"
                ),
            )
        for lo, hi in DECODE_PIECES:
            positions = QueryPositions(lo, columns)
            part = backend.attend(q[:, :, lo:hi], memory, positions)
            torch.testing.assert_close(
                part,
                whole[:, :, lo:hi],
                **self.tolerance(case.dtype),
                msg=lambda m, p=positions, lo=lo, hi=hi: (
                    f"rows {lo}..{hi - 1} attended alone "
                    f"at {p} differ from the same rows of the pass at QueryPositions(start=0, "
                    f"total={columns}): a position-dependent backend must align queries by "
                    f"positions (start, total), never by q's row count\n{m}"
                ),
            )

    @pytest.mark.parametrize("total", list(DECODE_TOTALS))
    @pytest.mark.parametrize("case", CASES)
    def test_attend_matches_its_weights_at_any_position(self, backend, case, total):
        columns = DECODE_TOTALS[total]
        q, k, v = make_inputs(DECODE_SHAPE, case, seed=25)
        mask = lengths_mask(partial_lengths(DECODE_SHAPE), DECODE_SHAPE.nk, case.device)
        backend = self.on(backend, case)
        self.require_support(backend, q, k, v, mask)
        memory = backend.prepare(k, v, mask)

        for lo, hi in [(0, DECODE_SHAPE.nq), *DECODE_PIECES[-2:]]:
            positions = QueryPositions(lo, columns)
            out = backend.attend(q[:, :, lo:hi], memory, positions)

            expected = self.expected_attend(backend, q[:, :, lo:hi], k, v, mask, positions)
            self.assert_matches_definition(out, expected, case, positions=positions)

    @pytest.mark.parametrize("case", CASES)
    def test_batch_items_are_independent(self, backend, case):
        q, k, v = make_inputs(BASE, case, seed=11)
        backend = self.on(backend, case)
        out = self.checked_forward(backend, q, k, v, lengths_mask([8, 5, 2], BASE.nk, case.device))

        others = torch.tensor([True, False, True], device=case.device)[:, None, None, None]
        q2, k2, v2 = _swap(others, (q, k, v), make_inputs(BASE, case, seed=12, magnitude=3.0))
        out2 = backend(q2, k2, v2, lengths_mask([3, 5, 8], BASE.nk, case.device))

        torch.testing.assert_close(out2[1], out[1], **self.tolerance(case.dtype))

    @pytest.mark.parametrize("case", CASES)
    def test_heads_are_independent(self, backend, case):
        shape = Shape(nq=5, nk=8, d=32, dv=32, heads=3)
        q, k, v = make_inputs(shape, case, seed=13)
        mask = lengths_mask(partial_lengths(shape), shape.nk, case.device)
        backend = self.on(backend, case)
        out = self.checked_forward(backend, q, k, v, mask)

        others = torch.tensor([True, False, True], device=case.device)[None, :, None, None]
        q2, k2, v2 = _swap(others, (q, k, v), make_inputs(shape, case, seed=14, magnitude=3.0))
        out2 = backend(q2, k2, v2, mask)

        torch.testing.assert_close(out2[:, 1], out[:, 1], **self.tolerance(case.dtype))

    @pytest.mark.parametrize("case", CASES)
    def test_attention_weights_follow_the_mask(self, backend, case):
        shape = Shape(nq=4, nk=7, d=32, dv=16)
        q, k, v = make_inputs(shape, case, seed=15)
        mask = lengths_mask(empty_lengths(shape), shape.nk, case.device)
        backend = self.on(backend, case)
        self.require_support(backend, q, k, v, mask)

        with torch.no_grad():
            weights = backend.attention_weights(q, k, v, mask)

        assert weights.shape == (shape.batch, shape.heads, shape.nq, shape.nk)
        assert torch.isfinite(weights).all()
        on_padded = weights.masked_select(~mask[:, None, None, :])
        assert torch.equal(on_padded, torch.zeros_like(on_padded)), "padded keys got weight"
        if self.weights_normalised:
            sums = weights.double().sum(-1)
            expected = mask.any(-1).double()[:, None, None].expand_as(sums)
            torch.testing.assert_close(sums, expected, **self.tolerance(case.dtype))
        if self.backend_spec().exact:
            expected = reference_weights(q, k, mask)
            hint = (
                "attention_weights() differs from exact masked softmax, which the BackendSpec "
                "claims (exact=True): return the weights forward() applies, or register with "
                "exact=False"
            )
            torch.testing.assert_close(
                weights.double(),
                expected,
                **self.tolerance(case.dtype),
                msg=lambda m: f"{hint}\n{m}",
            )

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("odd", list(ODD_INPUTS))
    def test_supports_answers_odd_inputs_and_means_it(self, backend, odd, device):
        """``supports()`` never raises; when it says None, forward really runs."""
        shape, dtype, padding = ODD_INPUTS[odd]
        case = Case(device, dtype)
        q, k, v = make_inputs(shape, case)
        lengths = {"partial": partial_lengths(shape), "empty": [0] * shape.batch}.get(padding)
        mask = None if lengths is None else lengths_mask(lengths, shape.nk, device)
        backend = self.on(backend, case)

        reason = backend.supports(q, k, v, mask)

        _check_reason(reason)
        if reason is None:
            out = backend(q, k, v, key_padding_mask=mask)
            assert out.shape == (shape.batch, shape.heads, shape.nq, shape.dv)
            assert torch.isfinite(out).all()

    def test_describe_is_a_json_serialisable_dict(self, backend):
        """``describe()`` lands in the run record, before and after a forward."""
        before = backend.describe()
        case = Case(DEVICES[0], torch.float32)
        q, k, v = make_inputs(BASE, case)
        mask = lengths_mask(partial_lengths(BASE), BASE.nk, case.device)
        backend = self.on(backend, case)
        if backend.supports(q, k, v, mask) is None:
            backend(q, k, v, key_padding_mask=mask)
        after = backend.describe()

        for described in (before, after):
            problem = describe_problem(described)
            assert problem is None, f"{problem} (see xbench.api.backend.RESERVED_DESCRIBE_KEYS)"
            json.dumps(described, allow_nan=False)

    def test_reports_its_deviation_from_exact_attention(self, backend, record_property):
        """Reported, not judged, for an approximation (see the module doc); an exact backend
        must be within float32 tolerance of softmax attention here too."""
        q, k, v = make_inputs(DEVIATION_SHAPE)
        mask = lengths_mask(partial_lengths(DEVIATION_SHAPE), DEVIATION_SHAPE.nk)
        self.require_support(self.on(backend, CPU_FLOAT32), q, k, v, mask)

        deviation = deviation_from_exact(backend)

        record_property("deviation_from_exact", str(deviation))
        print(f"{self.backend_name}: {deviation}")
        figures = vars(deviation).values()
        assert all(math.isfinite(x) for x in figures if isinstance(x, float)), str(deviation)
        if self.backend_spec().exact:
            rtol, _ = self.tolerances[torch.float32]
            assert max(deviation.output_relative, deviation.weights_relative) <= rtol, (
                f"an exact backend's {deviation}"
            )


def _check_reason(reason: object) -> None:
    assert reason is None or (isinstance(reason, str) and reason.strip()), (
        f"supports() must return None or a non-empty reason, got {reason!r}"
    )


def _scale_kwarg(scale: float | None) -> dict[str, float]:
    """Pass ``scale`` only when set, so a backend relying on its default is called as usual."""
    return {} if scale is None else {"scale": scale}


def _swap(where: Tensor, old: Sequence[Tensor], new: Sequence[Tensor]) -> list[Tensor]:
    """Each tensor of ``new`` where ``where`` holds, of ``old`` elsewhere."""
    return [torch.where(where, n, o) for o, n in zip(old, new, strict=True)]


def _like(t: Tensor, seed: int) -> Tensor:
    """A deterministic random tensor shaped like ``t``: the upstream gradient."""
    return torch.randn(t.shape, generator=torch.Generator().manual_seed(seed)).to(t)

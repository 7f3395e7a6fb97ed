"""The conformance kit (xbench.testing) applied to the built-in backends, and shown to
reject broken backends: a kit that passes everything would prove nothing."""

from __future__ import annotations

import textwrap

import pytest

from xbench.api.errors import UserError
from xbench.cli.check_backend import check_backend_command
from xbench.testing import DEVIATION_SHAPE, BackendConformance, deviation_from_exact
from xbench_plugins.naive import NaiveAttention
from xbench_plugins.uniform import UniformAttention

pytest_plugins = ["pytester"]


class TestNaiveConformance(BackendConformance):
    backend_name = "naive"


class TestFlashConformance(BackendConformance):
    backend_name = "flash"


class TestFlashMathKernelConformance(BackendConformance):
    backend_name = "flash"
    options = {"kernel": "math"}


class TestUniformConformance(BackendConformance):
    backend_name = "uniform"
    uses_queries = False


class TestSparseLocalConformance(BackendConformance):
    backend_name = "sparse"
    options = {"block_size": 4}
    padding_equals_truncation = False  # its block layout is aligned to Nk, padding included


class TestSparseBigbirdConformance(BackendConformance):
    backend_name = "sparse"
    options = {"pattern": "bigbird", "block_size": 4, "window": 0}
    padding_equals_truncation = False


class TestLinearEluConformance(BackendConformance):
    backend_name = "linear"


class TestLinearFavorConformance(BackendConformance):
    backend_name = "linear"
    options = {"feature_map": "favor", "num_features": 32}


# A test module run by pytester: it registers its own backends in-process (through the
# kit's ``extra_plugins``, i.e. xbench.registry.load_registry) and subclasses the kit.
KIT_ON_BROKEN_BACKENDS = textwrap.dedent(
    '''
    """Backends with one bug each, and one without."""
    import sys
    from dataclasses import dataclass

    import torch

    import xbench
    from xbench.api.backend import AttentionBackend, BackendSpec, masked_softmax_weights
    from xbench.testing import BackendConformance


    @dataclass
    class NoOptions:
        pass


    class IgnoresMask(AttentionBackend):
        def forward(self, q, k, v, key_padding_mask=None, scale=None):
            return masked_softmax_weights(q, k, None, scale) @ v


    class NanWhenEmpty(AttentionBackend):
        """Plain -inf masking: a query with no real key gets softmax of all -inf = NaN."""

        def forward(self, q, k, v, key_padding_mask=None, scale=None):
            scores = q @ k.transpose(-2, -1) * (scale or q.shape[-1] ** -0.5)
            if key_padding_mask is not None:
                scores = scores.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))
            return torch.softmax(scores, dim=-1) @ v


    class Correct(AttentionBackend):
        def forward(self, q, k, v, key_padding_mask=None, scale=None):
            return masked_softmax_weights(q, k, key_padding_mask, scale) @ v


    class MisdescribesItself(Correct):
        """Correct, but says it computed 150% of the score pairs."""

        def describe(self):
            return {"kernel": "matmul", "kept_fraction": 1.5}


    @xbench.hookimpl
    def xbench_register_backends(register):
        for name, cls in [("ignores_mask", IgnoresMask), ("nan_when_empty", NanWhenEmpty),
                          ("correct", Correct), ("misdescribes", MisdescribesItself)]:
            build = lambda o, cls=cls: cls()  # noqa: E731
            register(BackendSpec(name=name, build=build, options=NoOptions, exact=True))


    PLUGINS = [("broken_backends", sys.modules[__name__])]


    class TestIgnoresMask(BackendConformance):
        backend_name = "ignores_mask"
        extra_plugins = PLUGINS


    class TestNanWhenEmpty(BackendConformance):
        backend_name = "nan_when_empty"
        extra_plugins = PLUGINS


    class TestCorrect(BackendConformance):
        backend_name = "correct"
        extra_plugins = PLUGINS


    class TestMisdescribes(BackendConformance):
        backend_name = "misdescribes"
        extra_plugins = PLUGINS
    '''
)


# Backends that keep forward's contract but break the static-memory one, each in one way,
# and a position-dependent backend that keeps it.
KIT_ON_BROKEN_MEMORIES = textwrap.dedent(
    '''
    """prepare / attend / attend_weights / select, broken one way each, and one kept."""
    import sys
    from dataclasses import dataclass

    import torch

    import xbench
    from xbench.api.backend import (
        AttentionBackend, BackendSpec, PreparedMemory, QueryPositions, masked_softmax_weights
    )
    from xbench.testing import BackendConformance


    @dataclass
    class NoOptions:
        pass


    class Correct(AttentionBackend):
        def forward(self, q, k, v, key_padding_mask=None, scale=None):
            return masked_softmax_weights(q, k, key_padding_mask, scale) @ v


    class PrepareDropsMask(Correct):
        def prepare(self, k, v, key_padding_mask=None, scale=None):
            return PreparedMemory(k, v, None, scale)


    class PrepareDetaches(Correct):
        def prepare(self, k, v, key_padding_mask=None, scale=None):
            return PreparedMemory(k.detach(), v.detach(), key_padding_mask, scale)


    @dataclass(frozen=True, kw_only=True)
    class HeadFirstMemory(PreparedMemory):
        v_by_head: torch.Tensor  # (H, B, Nk, Dv), and select() is not overridden


    class MemoryNotBatchFirst(Correct):
        def prepare(self, k, v, key_padding_mask=None, scale=None):
            return HeadFirstMemory(k, v, key_padding_mask, scale, v_by_head=v.transpose(0, 1))

        def attend(self, q, memory, positions=None):
            weights = masked_softmax_weights(q, memory.k, memory.key_padding_mask, memory.scale)
            return weights @ memory.v_by_head.transpose(0, 1)


    def sharpened_weights(q, memory, positions):
        """Softmax whose temperature falls along the decoder columns: position-dependent."""
        columns = torch.arange(positions.start, positions.start + q.shape[2])
        sharp = (1 + columns / positions.total).to(q)[:, None]
        return masked_softmax_weights(q * sharp, memory.k, memory.key_padding_mask, memory.scale)


    class AlignsByColumn(AttentionBackend):
        """Position-dependent and right: aligned by the columns the positions name."""

        def positions(self, q, positions):
            return QueryPositions.whole(q.shape[2]) if positions is None else positions

        def forward(self, q, k, v, key_padding_mask=None, scale=None):
            return self.attend(q, PreparedMemory(k, v, key_padding_mask, scale))

        def attend(self, q, memory, positions=None):
            return sharpened_weights(q, memory, self.positions(q, positions)) @ memory.v

        def attend_weights(self, q, memory, positions=None):
            return sharpened_weights(q, memory, self.positions(q, positions))

        def attention_weights(self, q, k, v, key_padding_mask=None, scale=None):
            return self.attend_weights(q, PreparedMemory(k, v, key_padding_mask, scale))


    class AlignsByRowCount(AlignsByColumn):
        """Aligns by q's rows: a decode step's single row always looks like column 0."""

        def positions(self, q, positions):
            return QueryPositions.whole(q.shape[2])


    class WeightsIgnorePositions(AlignsByColumn):
        """attend honours the positions, attend_weights forgets to pass them on."""

        def attend_weights(self, q, memory, positions=None):
            return super().attend_weights(q, memory)


    BACKENDS = {
        "drops_mask": (PrepareDropsMask, True),
        "detaches": (PrepareDetaches, True),
        "head_first": (MemoryNotBatchFirst, True),
        "by_column": (AlignsByColumn, False),
        "by_row_count": (AlignsByRowCount, False),
        "weights_ignore_positions": (WeightsIgnorePositions, False),
    }


    @xbench.hookimpl
    def xbench_register_backends(register):
        for name, (cls, exact) in BACKENDS.items():
            build = lambda o, cls=cls: cls()  # noqa: E731
            register(BackendSpec(name=name, build=build, options=NoOptions, exact=exact))


    PLUGINS = [("broken_memories", sys.modules[__name__])]
    for name in BACKENDS:
        attributes = {"backend_name": name, "extra_plugins": PLUGINS}
        globals()[f"Test_{name}"] = type(f"Test_{name}", (BackendConformance,), attributes)
    '''
)


def outcomes_of(pytester, source: str) -> dict[str, dict[str, set[str]]]:
    """Run the kit as the generated module ``source`` uses it: {class: {outcome: tests}}."""
    pytester.makepyfile(test_generated_backends=source)
    recorder = pytester.inline_run("-p", "no:cacheprovider")
    assert not recorder.getfailedcollections(), "the generated test module did not collect"
    outcomes: dict[str, dict[str, set[str]]] = {}
    for outcome, reports in zip(
        ("passed", "skipped", "failed"), recorder.listoutcomes(), strict=True
    ):
        for report in reports:
            _, cls, test = report.nodeid.split("::")
            outcomes.setdefault(cls, {}).setdefault(outcome, set()).add(test.split("[")[0])
    return outcomes


@pytest.fixture
def kit_outcomes(pytester) -> dict[str, dict[str, set[str]]]:
    """The kit on the in-process backends with broken forwards (and a correct one)."""
    return outcomes_of(pytester, KIT_ON_BROKEN_BACKENDS)


def test_kit_rejects_broken_backends_and_accepts_a_correct_one(kit_outcomes):
    ignores_mask = kit_outcomes["TestIgnoresMask"].get("failed", set())
    assert {
        "test_padded_keys_have_no_influence",
        "test_padding_equals_truncation",
        "test_fully_padded_item_gives_zeros_and_finite_gradients",
        "test_gradients_reach_q_k_v_but_not_padded_keys",
        "test_matches_its_definition",
    } <= ignores_mask

    nan_when_empty = kit_outcomes["TestNanWhenEmpty"].get("failed", set())
    assert {
        "test_fully_padded_item_gives_zeros_and_finite_gradients",
        "test_large_inputs_stay_finite",
        "test_supports_answers_odd_inputs_and_means_it",
    } <= nan_when_empty

    assert set(kit_outcomes["TestCorrect"]) == {"passed"}
    assert kit_outcomes["TestMisdescribes"]["failed"] == {
        "test_describe_is_a_json_serialisable_dict"
    }


def test_kit_rejects_broken_memories_and_accepts_a_position_dependent_backend(pytester):
    outcomes = outcomes_of(pytester, KIT_ON_BROKEN_MEMORIES)

    def failed(name: str) -> set[str]:
        return outcomes[f"Test_{name}"].get("failed", set())

    prepared = "test_prepared_memory_gives_the_forward_output"
    gradients = "test_gradients_flow_through_prepare_and_attend"
    assert {prepared, gradients} <= failed("drops_mask")
    assert failed("detaches") == {gradients}
    assert failed("head_first") == {"test_selected_memory_serves_the_selected_items"}
    assert failed("by_row_count") == {"test_decoding_step_by_step_equals_the_teacher_forced_pass"}
    assert failed("weights_ignore_positions") == {"test_attend_matches_its_weights_at_any_position"}
    assert set(outcomes["Test_by_column"]) == {"passed"}


def test_the_deviation_report_measures_distance_from_exact_attention():
    exact = deviation_from_exact(NaiveAttention())
    control = deviation_from_exact(UniformAttention())

    assert exact.output_relative < 1e-6 and exact.weights_max_abs < 1e-6
    assert control.output_relative > 0.1 and control.weights_relative > 0.1
    # uniform is the control the report compares with: both figures measure the same thing
    assert control.output_relative == pytest.approx(control.control_relative, rel=1e-5)
    assert exact.control_relative == pytest.approx(control.control_relative)
    assert f"Nq={DEVIATION_SHAPE.nq} Nk={DEVIATION_SHAPE.nk}" in str(control)


def test_check_backend_reports_the_deviation_after_the_kit(capsys):
    assert check_backend_command(["uniform", "uses_queries=false", "-q", "-k", "describe"]) == 0

    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("uniform: deviation from exact masked softmax attention at B=2 H=4")
    assert "output max abs" in last and "attention_weights max abs" in last


def test_check_backend_runs_the_kit_on_an_installed_backend():
    assert check_backend_command(["naive", "-q"]) == 0


def test_check_backend_passes_kit_switches_and_backend_options():
    args = ["uniform", "uses_queries=false", "-q", "-k", "gradients"]
    assert check_backend_command(args) == 0
    assert check_backend_command(["uniform", "-q", "-k", "gradients"]) == 1  # ignores q and k
    assert check_backend_command(["flash", "backend.kernel=math", "-q", "-k", "definition"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["flash", "backend.kernel=turbo"], r"backend\.kernel='turbo' is not allowed"),
        (["flash", "colour=red"], r"unknown setting colour=red; allowed: uses_queries"),
        (["flash", "uses_queries=maybe"], r"unknown setting uses_queries=maybe"),
    ],
)
def test_check_backend_rejects_bad_settings_before_running(args, message):
    with pytest.raises(UserError, match=message):
        check_backend_command(args)


def test_check_backend_passes_pytest_arguments_and_its_exit_code_through():
    assert check_backend_command(["naive", "-q", "-k", "no_such_test"]) == 5  # none selected


def test_check_backend_rejects_an_unknown_name_with_the_installed_ones():
    with pytest.raises(UserError, match=r"unknown backend 'naiv'.*naive.*Did you mean 'naive'"):
        check_backend_command(["naiv"])


def test_check_backend_needs_a_name():
    with pytest.raises(UserError, match="check-backend NAME"):
        check_backend_command([])

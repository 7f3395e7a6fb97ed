"""Option dataclasses: validation messages name the dotted field and what is allowed."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import pytest

from xbench.api.errors import UserError
from xbench.api.options import build_options, check_options_class, describe_options, option
from xbench_plugins.flash import FlashOptions
from xbench_plugins.naive import NaiveOptions
from xbench_tasks.qa import QADataOptions, QAOptions


@dataclass
class ListOptions:
    sizes: list[int] = option(default_factory=lambda: [1, 2], help="sizes to try")
    label: str | None = option(None, help="optional label")
    ratio: float = option(0.5, help="a ratio", min=0.0, max=1.0)


@dataclass
class NoDefault:
    size: int


@dataclass
class DictTyped:
    table: dict = field(default_factory=dict)


@dataclass
class UnionTyped:
    value: int | str = 3


@dataclass
class Outer:
    inner: NoDefault = field(default_factory=lambda: NoDefault(1))


def test_nested_valid_values_build_nested_instances():
    values = {
        "batch_size": 32,
        "num_workers": 0,
        "data": {"num_facts": 20, "source": "embedded", "two_hop": 0.25, "hf_name": None},
    }

    built = build_options(QAOptions, values, "task")

    assert isinstance(built, QAOptions)
    assert isinstance(built.data, QADataOptions)
    assert built.batch_size == 32
    assert built.data.num_facts == 20
    assert built.data.two_hop == 0.25
    assert built.data.hf_name is None
    # untouched fields keep their defaults, nested ones included
    assert built.eval_batch_size == QAOptions().eval_batch_size
    assert built.data.distractors == QADataOptions().distractors


@pytest.mark.parametrize("values", [None, {}])
def test_no_values_give_the_defaults(values):
    assert build_options(QAOptions, values, "task") == QAOptions()


def test_sequences_become_lists_and_int_is_accepted_for_float():
    built = build_options(ListOptions, {"sizes": (4, 8), "ratio": 1}, "backend")

    assert built.sizes == [4, 8]
    assert built.ratio == 1


@pytest.mark.parametrize(
    ("values", "path", "bounds"),
    [
        ({"data": {"num_facts": -1}}, "task.data.num_facts=-1", "[1, 2000]"),
        ({"data": {"num_facts": 2001}}, "task.data.num_facts=2001", "[1, 2000]"),
        ({"data": {"two_hop": 1.5}}, "task.data.two_hop=1.5", "[0.0, 1.0]"),
        ({"batch_size": 0}, "task.batch_size=0", "[1, inf]"),
        ({"num_workers": -2}, "task.num_workers=-2", "[0, inf]"),
    ],
)
def test_out_of_range_names_the_dotted_field_and_the_range(values, path, bounds):
    with pytest.raises(UserError) as info:
        build_options(QAOptions, values, "task")

    message = str(info.value)
    assert path in message
    assert f"allowed range is {bounds}" in message


def test_nan_is_not_inside_a_range():
    # NaN compares false with both bounds, so a plain `<`/`>` check lets it through.
    with pytest.raises(UserError, match=r"task\.data\.two_hop"):
        build_options(QAOptions, {"data": {"two_hop": float("nan")}}, "task")


@pytest.mark.parametrize(
    ("cls", "values", "where", "path", "choices"),
    [
        (
            QAOptions,
            {"data": {"source": "web"}},
            "task",
            "task.data.source='web'",
            "embedded, squad_json, hf",
        ),
        (
            FlashOptions,
            {"kernel": "fastest"},
            "backend",
            "backend.kernel='fastest'",
            "auto, cudnn, flash, efficient, math",
        ),
    ],
)
def test_bad_choice_lists_the_choices(cls, values, where, path, choices):
    with pytest.raises(UserError) as info:
        build_options(cls, values, where)

    assert path in str(info.value)
    assert f"choose one of: {choices}" in str(info.value)


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"batch_size": "big"}, "task.batch_size='big' must be of type int"),
        ({"batch_size": True}, "task.batch_size=True must be of type int"),
        ({"batch_size": 1.5}, "task.batch_size=1.5 must be of type int"),
        ({"data": {"two_hop": "half"}}, "task.data.two_hop='half' must be of type float"),
        ({"data": {"two_hop": False}}, "task.data.two_hop=False must be of type float"),
        ({"data": {"source": 3}}, "task.data.source=3 must be of type str"),
        ({"data": {"train_path": 7}}, "task.data.train_path=7 must be of type str"),
    ],
)
def test_wrong_type_names_field_and_type(values, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        build_options(QAOptions, values, "task")


@dataclass
class TypedLists:
    sizes: list[int] = option(default_factory=lambda: [1], help="sizes", min=1, max=8)
    pairs: list[list[int]] = option(default_factory=list, help="[a, b] pairs", min=1)
    kinds: list[str] = option(default_factory=list, help="kinds", choices=("fwd", "bwd"))
    ratios: list[float] = option(default_factory=list, help="ratios", min=0.0, max=1.0)


def test_list_options_in_range_and_of_their_element_type_are_accepted():
    values = {"sizes": [2, 8], "pairs": [[1, 2], (3, 4)], "kinds": ["bwd"], "ratios": [0, 0.5]}

    built = build_options(TypedLists, values, "bench")

    assert built == TypedLists(sizes=[2, 8], pairs=[[1, 2], (3, 4)], kinds=["bwd"], ratios=[0, 0.5])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sizes": 5}, "bench.sizes=5 must be a list of int"),
        ({"sizes": "big"}, "bench.sizes='big' must be a list of int"),
        ({"sizes": [2, "3"]}, "bench.sizes[1]='3' must be of type int"),
        ({"sizes": [True]}, "bench.sizes[0]=True must be of type int"),
        ({"sizes": [1, None]}, "bench.sizes[1] must be set (got null)"),
        ({"sizes": [0]}, "bench.sizes[0]=0 is out of range; allowed range is [1, 8]"),
        ({"sizes": [4, 9]}, "bench.sizes[1]=9 is out of range; allowed range is [1, 8]"),
        ({"pairs": [3]}, "bench.pairs[0]=3 must be a list of int"),
        ({"pairs": 3}, "bench.pairs=3 must be a list of list of int"),
        ({"pairs": [[True, 2]]}, "bench.pairs[0][0]=True must be of type int"),
        (
            {"pairs": [[1, 2], [2, 0]]},
            "bench.pairs[1][1]=0 is out of range; allowed range is [1, inf]",
        ),
        (
            {"kinds": ["fwd", "both"]},
            "bench.kinds[1]='both' is not allowed; choose one of: fwd, bwd",
        ),
        ({"ratios": [float("nan")]}, "bench.ratios[0]=nan is out of range"),
        ({"ratios": [1.5]}, "bench.ratios[0]=1.5 is out of range; allowed range is [0.0, 1.0]"),
    ],
)
def test_list_options_check_each_element_in_one_line(values, message):
    with pytest.raises(UserError) as info:
        build_options(TypedLists, values, "bench")

    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value", [5, "embedded", [1, 2]])
def test_nested_node_given_a_scalar_is_a_user_error(value):
    # `task.data=5` on the command line reaches build_options with a scalar for a nested node.
    with pytest.raises(UserError, match=r"task\.data"):
        build_options(QAOptions, {"data": value}, "task")


@pytest.mark.parametrize(
    ("values", "where_prefix", "unknown"),
    [
        ({"batchsize": 3}, "task:", "batchsize"),
        ({"data": {"nm_facts": 3, "zzz": 1}}, "task.data:", "nm_facts, zzz"),
    ],
)
def test_unknown_keys_are_listed_with_the_allowed_ones(values, where_prefix, unknown):
    with pytest.raises(UserError) as info:
        build_options(QAOptions, values, "task")

    message = str(info.value)
    assert message.startswith(where_prefix)
    assert f"unknown option(s) {unknown}" in message
    assert "allowed:" in message
    assert "batch_size" in message or "num_facts" in message


@pytest.mark.parametrize(
    ("values", "path"),
    [
        ({"batch_size": None}, "task.batch_size"),
        ({"data": {"num_facts": None}}, "task.data.num_facts"),
    ],
)
def test_null_for_a_required_field_is_rejected(values, path):
    with pytest.raises(UserError, match="^" + re.escape(f"{path} must be set (got null)")):
        build_options(QAOptions, values, "task")


def test_null_for_an_optional_field_is_accepted():
    built = build_options(ListOptions, {"label": None}, "backend")

    assert built.label is None


def test_errors_raised_by_the_dataclass_itself_become_user_errors():
    @dataclass
    class Checked:
        even: int = option(2, help="an even number")

        def __post_init__(self):
            if self.even % 2:
                raise ValueError("even must be even")

    with pytest.raises(UserError, match=r"^backend: even must be even$"):
        build_options(Checked, {"even": 3}, "backend")


@pytest.mark.parametrize(
    ("cls", "fragment"),
    [
        (dict, "options must be a dataclass type"),
        (NaiveOptions(), "options must be a dataclass type"),
        (None, "options must be a dataclass type"),
        (NoDefault, "option 'size' has no default"),
        (DictTyped, "option 'table' has type"),
        (UnionTyped, "option 'value' has type"),
        (Outer, "inner: option 'size' has no default"),
    ],
    ids=["dict", "instance", "none", "no-default", "dict-typed", "union-typed", "nested"],
)
def test_check_options_class_gives_the_reason(cls, fragment):
    reason = check_options_class(cls)

    assert reason is not None
    assert fragment in reason


@pytest.mark.parametrize("cls", [QAOptions, FlashOptions, NaiveOptions, ListOptions])
def test_check_options_class_accepts_good_classes(cls):
    assert check_options_class(cls) is None


def test_describe_options_flattens_nested_names():
    rows = describe_options(QAOptions, "task.")
    by_name = {row.name: (row.default, row.help) for row in rows}

    assert len(rows) == len(by_name)
    expected = {f"task.data.{f.name}" for f in dataclasses.fields(QADataOptions)}
    expected |= {f"task.{f.name}" for f in dataclasses.fields(QAOptions) if f.name != "data"}
    assert set(by_name) == expected
    assert by_name["task.data.num_facts"][0] == 8
    assert "facts per context" in by_name["task.data.num_facts"][1]
    assert by_name["task.batch_size"] == (64, "training batch size")


def test_describe_options_evaluates_default_factories():
    rows = describe_options(ListOptions)

    assert rows[0][:3] == ("sizes", [1, 2], "sizes to try")
    assert [row.name for row in rows] == ["sizes", "label", "ratio"]


@dataclass
class BoundedOptions:
    kernel: str = option("auto", help="which kernel", choices=("auto", "fast"))
    blocks: int = option(4, help="at least one", min=1)
    shift: float = option(0.0, help="at most two", max=2.0)
    inner: ListOptions = field(default_factory=ListOptions)


def test_describe_options_says_what_each_option_allows():
    rows = {row.name: row.allowed for row in describe_options(BoundedOptions, "backend.")}

    assert rows == {
        "backend.kernel": "one of: auto, fast",
        "backend.blocks": "range [1, inf]",
        "backend.shift": "range [-inf, 2.0]",
        "backend.inner.sizes": "",  # anything of its type
        "backend.inner.label": "",
        "backend.inner.ratio": "range [0.0, 1.0]",
    }

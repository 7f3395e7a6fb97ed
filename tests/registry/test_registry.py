"""The plugin registry: what plugins register is found, and every broken plugin is a
PluginError that names the plugin (and its distribution, for entry points)."""

from __future__ import annotations

import textwrap
import types
from dataclasses import dataclass, field

import pytest
import torch

import xbench
from xbench.api.backend import AttentionBackend, BackendSpec
from xbench.api.errors import PluginError, UserError
from xbench.api.options import option
from xbench.api.task import TaskSpec
from xbench.registry import DISABLE_ENV, load_registry

BUILTIN_BACKENDS = ("naive", "flash", "uniform")
BUILTIN_TASKS = ("qa",)


@dataclass
class GoodOptions:
    size: int = option(4, help="a size", min=1)


@dataclass
class NoDefaultOptions:
    size: int


@dataclass
class UnsupportedTypeOptions:
    table: dict = field(default_factory=dict)


@dataclass
class InnerWithoutDefault:
    depth: int


@dataclass
class NestedBadOptions:
    inner: InnerWithoutDefault = field(default_factory=lambda: InnerWithoutDefault(1))


class ZeroBackend(AttentionBackend):
    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        return torch.zeros(*q.shape[:-1], v.shape[-1])


def backend_spec(name: str = "zero", options: object = GoodOptions) -> BackendSpec:
    return BackendSpec(
        name=name,
        build=lambda o: ZeroBackend(),
        options=options,
        exact=False,
        description="test backend",
    )


def task_spec(name: str = "echo", options: object = GoodOptions) -> TaskSpec:
    return TaskSpec(name=name, modality="text", build=lambda o: None, options=options)


def make_plugin(backends=(), tasks=()) -> types.SimpleNamespace:
    """A plugin module stand-in whose hooks register the given specs."""

    @xbench.hookimpl
    def xbench_register_backends(register):
        for spec in backends:
            register(spec)

    @xbench.hookimpl
    def xbench_register_tasks(register):
        for spec in tasks:
            register(spec)

    return types.SimpleNamespace(
        xbench_register_backends=xbench_register_backends,
        xbench_register_tasks=xbench_register_tasks,
    )


def load(*plugins: tuple[str, object]):
    return load_registry(extra_plugins=list(plugins), use_entry_points=False)


@pytest.fixture(autouse=True)
def _no_disabled_plugins(monkeypatch):
    monkeypatch.delenv(DISABLE_ENV, raising=False)


def test_good_plugin_registers_backend_and_task_with_its_name():
    registry = load(("myplug", make_plugin([backend_spec()], [task_spec()])))

    assert set(registry.backends) == {"zero"}
    assert set(registry.tasks) == {"echo"}
    assert registry.backend("zero").options is GoodOptions
    assert registry.task("echo").modality == "text"
    for entry in (registry.backends["zero"], registry.tasks["echo"]):
        assert entry.plugin == "myplug"
        assert entry.distribution is None


def ordered_plugin(name: str, **marker) -> types.SimpleNamespace:
    """A plugin registering backend ``name`` from a hook marked with ``marker``."""

    @xbench.hookimpl(**marker)
    def xbench_register_backends(register):
        register(backend_spec(name))

    return types.SimpleNamespace(xbench_register_backends=xbench_register_backends)


def test_hooks_run_in_pluggy_order_and_every_entry_keeps_its_plugin():
    registry = load(
        ("early", ordered_plugin("from_early", tryfirst=True)),
        ("first", make_plugin([backend_spec("from_first")])),
        ("late", ordered_plugin("from_late", trylast=True)),
        ("second", make_plugin([backend_spec("two_a"), backend_spec("two_b")])),
    )

    # tryfirst, then plain implementations last-registered first, then trylast
    assert list(registry.backends) == ["from_early", "two_a", "two_b", "from_first", "from_late"]
    suppliers = {name: entry.plugin for name, entry in registry.backends.items()}
    assert suppliers == {
        "from_early": "early",
        "two_a": "second",
        "two_b": "second",
        "from_first": "first",
        "from_late": "late",
    }


@pytest.mark.parametrize("style", ["wrapper", "hookwrapper"])
def test_a_wrapper_runs_around_the_other_hooks_and_its_entries_are_its_own(style):
    seen = {}

    @xbench.hookimpl(**{style: True})
    def xbench_register_backends(register):
        register(backend_spec("before"))
        outcome = yield
        seen["outcome"] = outcome
        register(backend_spec("after"))
        return None if style == "wrapper" else outcome

    wrapping = types.SimpleNamespace(xbench_register_backends=xbench_register_backends)
    registry = load(("wrapping", wrapping), ("plain", make_plugin([backend_spec("inside")])))

    assert list(registry.backends) == ["before", "inside", "after"]
    suppliers = [entry.plugin for entry in registry.backends.values()]
    assert suppliers == ["wrapping", "plain", "wrapping"]
    assert "outcome" in seen  # the wrapper was resumed after the plain implementation


def test_an_error_inside_a_wrapped_hook_names_the_hook_that_raised_not_the_wrapper():
    @xbench.hookimpl(wrapper=True)
    def xbench_register_backends():
        return (yield)

    @xbench.hookimpl
    def failing(register):
        raise RuntimeError("kaboom")

    wrapping = types.SimpleNamespace(xbench_register_backends=xbench_register_backends)
    broken = types.SimpleNamespace(xbench_register_backends=failing)
    with pytest.raises(PluginError, match=r"^plugin 'broken' .*RuntimeError: kaboom"):
        load(("wrapping", wrapping), ("broken", broken))


def test_a_wrapper_that_raises_after_the_others_is_named():
    @xbench.hookimpl(wrapper=True)
    def xbench_register_tasks():
        yield
        raise ValueError("after the others")

    wrapping = types.SimpleNamespace(xbench_register_tasks=xbench_register_tasks)
    with pytest.raises(PluginError, match=r"^plugin 'wrapping' .*ValueError: after the others"):
        load(("wrapping", wrapping), ("plain", make_plugin(tasks=[task_spec()])))


def test_hooks_that_are_methods_of_a_plugin_object_are_attributed_too():
    class Plugin:
        @xbench.hookimpl
        def xbench_register_backends(self, register):
            register(backend_spec("from_method"))

    registry = load(("object", Plugin()))

    assert registry.backends["from_method"].plugin == "object"


def test_register_kept_and_called_after_loading_is_refused():
    kept = []

    @xbench.hookimpl
    def xbench_register_backends(register):
        kept.append(register)

    load(("keeper", types.SimpleNamespace(xbench_register_backends=xbench_register_backends)))

    with pytest.raises(PluginError, match="outside an xbench hook"):
        kept[0](backend_spec())


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (task_spec("wrongkind"), "expected BackendSpec, got TaskSpec"),
        ({"name": "zero"}, "expected BackendSpec, got dict"),
        (backend_spec("Zero"), "must be lower-case"),
        (backend_spec("1zero"), "must be lower-case"),
        (backend_spec("has-dash"), "must be lower-case"),
        (backend_spec(""), "must be lower-case"),
        (backend_spec("trailing_newline\n"), "must be lower-case"),
        (backend_spec(options=dict), "must be a dataclass type"),
        (backend_spec(options=GoodOptions()), "must be a dataclass type"),
        (backend_spec(options=NoDefaultOptions), "option 'size' has no default"),
        (backend_spec(options=UnsupportedTypeOptions), "option 'table' has type"),
        (backend_spec(options=NestedBadOptions), "inner: option 'depth' has no default"),
    ],
    ids=[
        "task-spec",
        "dict",
        "uppercase",
        "digit-first",
        "dash",
        "empty",
        "trailing-newline",
        "options-not-dataclass",
        "options-instance",
        "no-default",
        "bad-type",
        "nested-bad",
    ],
)
def test_invalid_backend_spec_is_a_plugin_error_naming_the_plugin(spec, fragment):
    with pytest.raises(PluginError) as info:
        load(("badplug", make_plugin([spec])))

    message = str(info.value)
    assert "'badplug'" in message
    assert fragment in message


def test_invalid_task_spec_is_rejected_too():
    with pytest.raises(PluginError, match=r"'badtask'.*expected TaskSpec, got BackendSpec"):
        load(("badtask", make_plugin(tasks=[backend_spec()])))


@pytest.mark.parametrize("modality", ["video", "Text", "", None])
def test_a_task_modality_outside_the_closed_set_names_the_allowed_values(modality):
    spec = TaskSpec(name="echo", modality=modality, build=lambda o: None, options=GoodOptions)

    with pytest.raises(PluginError) as info:
        load(("badplug", make_plugin(tasks=[spec])))

    assert f"modality {modality!r} of 'echo' is not one of: text, audio, image" in str(info.value)
    assert "'badplug'" in str(info.value)


@pytest.mark.parametrize("build", [lambda: None, lambda a, b: None], ids=["none", "two"])
def test_build_must_take_the_options_as_its_one_argument(build):
    spec = BackendSpec(name="zero", build=build, options=GoodOptions, exact=False)

    with pytest.raises(PluginError, match=r"build of 'zero' must take one argument"):
        load(("badplug", make_plugin([spec])))


def test_an_option_called_name_is_refused():
    @dataclass
    class NamedOptions:
        name: str = option("x", help="clashes with the node's selector")

    with pytest.raises(PluginError, match=r"option may not be called 'name'"):
        load(("badplug", make_plugin([backend_spec(options=NamedOptions)])))


def test_specs_take_keyword_arguments_only_and_the_error_says_so():
    with pytest.raises(TypeError, match="positional"):
        BackendSpec("zero", lambda o: ZeroBackend(), GoodOptions, False, "d")  # type: ignore[misc]

    @xbench.hookimpl
    def xbench_register_backends(register):
        register(BackendSpec("zero", lambda o: ZeroBackend(), GoodOptions, False, "d"))

    old_style = types.SimpleNamespace(xbench_register_backends=xbench_register_backends)
    with pytest.raises(PluginError, match=r"'oldplug'.*keyword arguments only"):
        load(("oldplug", old_style))


def test_build_that_is_not_callable_is_rejected():
    spec = BackendSpec(
        name="zero", build="not a function", options=GoodOptions, exact=False, description=""
    )
    with pytest.raises(PluginError, match=r"'badplug'.*build of 'zero' is not callable"):
        load(("badplug", make_plugin([spec])))


@pytest.mark.parametrize("kind", ["backend", "task"])
def test_duplicate_name_across_plugins_names_both_plugins(kind):
    spec = backend_spec("same") if kind == "backend" else task_spec("same")
    plugin = make_plugin([spec]) if kind == "backend" else make_plugin(tasks=[spec])
    other = make_plugin([spec]) if kind == "backend" else make_plugin(tasks=[spec])

    with pytest.raises(PluginError) as info:
        load(("alpha", plugin), ("beta", other))

    message = str(info.value)
    assert "'alpha'" in message
    assert "'beta'" in message
    assert "'same'" in message
    assert "already registered" in message


def test_same_name_for_a_backend_and_a_task_is_allowed():
    registry = load(("both", make_plugin([backend_spec("shared")], [task_spec("shared")])))

    assert "shared" in registry.backends
    assert "shared" in registry.tasks


def test_misspelled_hook_is_a_plugin_error():
    @xbench.hookimpl
    def xbench_register_backend(register):  # missing the final "s"
        register(backend_spec())

    plugin = types.SimpleNamespace(xbench_register_backend=xbench_register_backend)
    with pytest.raises(PluginError) as info:
        load(("typoplug", plugin))

    assert "'typoplug'" in str(info.value)
    assert "xbench_register_backend" in str(info.value)


def test_hook_with_unknown_argument_is_a_plugin_error():
    @xbench.hookimpl
    def xbench_register_backends(registrar):
        registrar(backend_spec())

    plugin = types.SimpleNamespace(xbench_register_backends=xbench_register_backends)
    with pytest.raises(PluginError, match=r"'argplug'.*not a valid xbench plugin"):
        load(("argplug", plugin))


def test_hook_that_raises_is_a_plugin_error_naming_the_plugin():
    @xbench.hookimpl
    def xbench_register_tasks(register):
        raise RuntimeError("kaboom")

    plugin = types.SimpleNamespace(xbench_register_tasks=xbench_register_tasks)
    with pytest.raises(PluginError) as info:
        load(("explosive", plugin))

    message = str(info.value)
    assert "'explosive'" in message
    assert "xbench_register_tasks" in message
    assert "RuntimeError: kaboom" in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_disable_env_skips_named_extra_plugins(monkeypatch):
    @xbench.hookimpl
    def xbench_register_backends(register):
        raise RuntimeError("must not run")

    broken = types.SimpleNamespace(xbench_register_backends=xbench_register_backends)
    monkeypatch.setenv(DISABLE_ENV, " other , broken ")

    registry = load(("broken", broken), ("good", make_plugin([backend_spec()])))

    assert set(registry.backends) == {"zero"}
    assert registry.backends["zero"].plugin == "good"


@pytest.mark.parametrize("value", ["naive", "uniform", "broken, naive", "uniform,naive"])
def test_the_reference_and_the_control_cannot_be_disabled(monkeypatch, value):
    monkeypatch.setenv(DISABLE_ENV, value)

    with pytest.raises(PluginError) as info:
        load_registry(use_entry_points=True)

    message = str(info.value)
    assert DISABLE_ENV in message and "cannot be disabled" in message
    named = sorted(name for name in ("naive", "uniform") if name in value)
    assert f"names {', '.join(named)}:" in message


def test_entry_points_register_the_builtins_from_the_xbench_distribution():
    registry = load_registry(use_entry_points=True)

    assert set(BUILTIN_BACKENDS) <= set(registry.backends)
    assert set(BUILTIN_TASKS) <= set(registry.tasks)
    for name in BUILTIN_BACKENDS:
        entry = registry.backends[name]
        assert entry.plugin == name
        assert entry.distribution == "xbench"
        assert entry.version == xbench.__version__
    assert registry.tasks["qa"].distribution == "xbench"
    assert registry.backend("naive").exact is True
    assert registry.backend("uniform").exact is False


def test_extra_plugin_clashing_with_an_entry_point_names_both():
    with pytest.raises(PluginError) as info:
        load_registry(extra_plugins=[("mine", make_plugin([backend_spec("naive")]))])

    assert "'mine'" in str(info.value)
    assert "'naive'" in str(info.value)


BROKEN_DIST = "xbench-broken-dist"
BROKEN_PLUGIN = "brokenplug"
BROKEN_MODULE = "xbench_test_broken_plugin_module"


@pytest.fixture
def broken_distribution(tmp_path, monkeypatch):
    """An installed distribution whose ``xbench`` entry point fails at import."""
    info = tmp_path / "xbench_broken_dist-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {BROKEN_DIST}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[xbench]\n{BROKEN_PLUGIN} = {BROKEN_MODULE}\n")
    (tmp_path / f"{BROKEN_MODULE}.py").write_text(
        textwrap.dedent("""\
        raise ImportError("needs a library that is not installed")
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_entry_point_that_fails_to_import_names_plugin_and_distribution(broken_distribution):
    with pytest.raises(PluginError) as info:
        load_registry(use_entry_points=True)

    message = str(info.value)
    assert f"'{BROKEN_PLUGIN}'" in message
    assert BROKEN_DIST in message
    assert "needs a library that is not installed" in message
    assert f"{DISABLE_ENV}={BROKEN_PLUGIN}" in message
    assert isinstance(info.value.__cause__, ImportError)


def test_disabling_the_broken_entry_point_loads_the_rest(broken_distribution, monkeypatch):
    monkeypatch.setenv(DISABLE_ENV, BROKEN_PLUGIN)

    registry = load_registry(use_entry_points=True)

    assert set(BUILTIN_BACKENDS) <= set(registry.backends)
    assert BROKEN_PLUGIN not in {e.plugin for e in registry.backends.values()}


@pytest.mark.parametrize(
    ("kind", "name", "suggestion"),
    [("backend", "flsh", "flash"), ("backend", "naiv", "naive"), ("task", "qaa", "qa")],
)
def test_unknown_name_lists_installed_and_suggests(kind, name, suggestion):
    registry = load_registry(use_entry_points=True)
    lookup = registry.backend if kind == "backend" else registry.task

    with pytest.raises(UserError) as info:
        lookup(name)

    message = str(info.value)
    assert f"Did you mean '{suggestion}'" in message
    assert f"unknown {kind} '{name}'" in message
    installed = BUILTIN_BACKENDS if kind == "backend" else BUILTIN_TASKS
    assert all(n in message for n in installed)
    assert not isinstance(info.value, PluginError)


def test_unknown_name_without_close_match_has_no_suggestion():
    registry = load(("myplug", make_plugin([backend_spec()])))

    with pytest.raises(UserError, match=r"installed backends: zero\.$"):
        registry.backend("completely_different")

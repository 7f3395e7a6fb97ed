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


def test_registration_order_is_kept_across_plugins():
    registry = load(
        ("first", make_plugin([backend_spec("aaa_one")])),
        ("second", make_plugin([backend_spec("aaa_two"), backend_spec("aaa_three")])),
    )

    assert list(registry.backends) == ["aaa_one", "aaa_two", "aaa_three"]
    assert [e.plugin for e in registry.backends.values()] == ["first", "second", "second"]


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

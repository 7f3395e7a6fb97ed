"""The plugin registry: loads ``xbench`` entry points with pluggy, calls their hooks through
pluggy (so ``tryfirst``, ``trylast`` and wrappers order them), and remembers which plugin
(and distribution) supplied every entry.

pluggy hands every implementation the same ``register`` callback, so the callback cannot
tell its callers apart by itself. Each plugin is therefore registered through a
:class:`_Attributed` stand-in: the same hook implementations with the same markers, each
run with the plugin's name in a context variable that ``register`` reads.
"""

from __future__ import annotations

import contextvars
import functools
import importlib.metadata
import inspect
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import pluggy

from xbench.api import hooks
from xbench.api.backend import BackendSpec
from xbench.api.errors import PluginError, UserError, did_you_mean
from xbench.api.options import check_options_class
from xbench.api.task import MODALITIES, TaskSpec

ENTRY_POINT_GROUP = "xbench"
DISABLE_ENV = "XBENCH_DISABLE_PLUGINS"
#: Plugins every leaderboard is read against: the reference and the control.
PROTECTED_PLUGINS = ("naive", "uniform")
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_MARKER = f"{hooks.PROJECT_NAME}_impl"
# What Python says when a plugin written for positional specs builds one.
_POSITIONAL_SPEC = re.compile(r"(BackendSpec|TaskSpec)\.__init__\(\) takes 1 positional argument")
# "plugin 'x' (distribution y)" of the plugin whose hook implementation is running.
_SUPPLIER: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "xbench_supplier", default=None
)


@dataclass(frozen=True)
class Registered:
    """A backend or task spec with the plugin that supplied it."""

    spec: BackendSpec | TaskSpec
    plugin: str
    distribution: str | None = None
    version: str | None = None


@dataclass
class Registry:
    """Installed backends and tasks by name, in the order their hooks registered them."""

    backends: dict[str, Registered] = field(default_factory=dict)
    tasks: dict[str, Registered] = field(default_factory=dict)

    def backend(self, name: str) -> BackendSpec:
        return _lookup(self.backends, name, "backend").spec  # type: ignore[return-value]

    def task(self, name: str) -> TaskSpec:
        return _lookup(self.tasks, name, "task").spec  # type: ignore[return-value]


def _lookup(table: dict[str, Registered], name: str, kind: str) -> Registered:
    if name in table:
        return table[name]
    installed = ", ".join(sorted(table)) or "none"
    hint = did_you_mean(name, table)
    raise UserError(f"unknown {kind} {name!r}; installed {kind}s: {installed}.{hint}")


def disabled_plugins() -> set[str]:
    """Plugin names listed in ``XBENCH_DISABLE_PLUGINS`` (comma separated).

    Raises :class:`PluginError` when it names the reference or the control: without them
    no figure on a leaderboard can be read.
    """
    names = {p.strip() for p in os.environ.get(DISABLE_ENV, "").split(",") if p.strip()}
    protected = sorted(names.intersection(PROTECTED_PLUGINS))
    if protected:
        raise PluginError(
            f"{DISABLE_ENV} names {', '.join(protected)}: the reference (naive) and the "
            f"control (uniform) cannot be disabled; remove them from {DISABLE_ENV}"
        )
    return names


def load_registry(
    extra_plugins: Iterable[tuple[str, Any]] = (), use_entry_points: bool = True
) -> Registry:
    """Load plugins and collect their registrations.

    ``extra_plugins`` are ``(name, module_or_object)`` pairs registered in-process (tests,
    notebooks), after the entry points of group ``xbench`` (loaded unless disabled).
    """
    pm = pluggy.PluginManager(hooks.PROJECT_NAME)
    pm.add_hookspecs(hooks)
    origins: dict[str, tuple[str | None, str | None]] = {}
    skip = disabled_plugins()
    if use_entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in skip or pm.has_plugin(ep.name):
                continue
            dist = ep.dist.name if ep.dist else None
            origins[ep.name] = (dist, ep.dist.version if ep.dist else None)
            try:
                plugin = ep.load()
            except Exception as error:
                raise PluginError(
                    f"{_who(ep.name, dist)} failed to load {ep.value!r}: "
                    f"{type(error).__name__}: {error}. Set {DISABLE_ENV}={ep.name} to skip it."
                ) from error
            _register_plugin(pm, ep.name, plugin, dist)
    for name, plugin in extra_plugins:
        if name not in skip:
            origins[name] = (None, None)
            _register_plugin(pm, name, plugin, None)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as error:
        name = pm.get_name(error.plugin) or "?"
        dist = origins.get(name, (None, None))[0]
        raise PluginError(f"{_who(name, dist)}: {error}") from error
    registry = Registry()
    pm.hook.xbench_register_backends(register=_recorder(BackendSpec, registry.backends, origins))
    pm.hook.xbench_register_tasks(register=_recorder(TaskSpec, registry.tasks, origins))
    return registry


@functools.cache
def get_registry() -> Registry:
    """The registry of installed plugins, loaded once per process."""
    return load_registry()


def _who(plugin: str, dist: str | None) -> str:
    return f"plugin {plugin!r} (distribution {dist or 'unknown'})"


def _register_plugin(pm: pluggy.PluginManager, name: str, plugin: Any, dist: str | None) -> None:
    try:
        pm.register(_Attributed(plugin, name, _who(name, dist)), name=name)
    except (pluggy.PluginValidationError, ValueError) as error:
        raise PluginError(f"{_who(name, dist)} is not a valid xbench plugin: {error}") from error


class _Attributed:
    """What pluggy registers in place of a plugin: each of its hook implementations (any
    attribute carrying the ``xbench.hookimpl`` marker), wrapped by :func:`_attributed`."""

    def __init__(self, plugin: Any, name: str, who: str) -> None:
        self._plugin = plugin
        for attribute in dir(plugin):
            try:
                function = getattr(plugin, attribute)
            except Exception:  # pluggy skips attributes it cannot read; so do we
                continue
            if inspect.isroutine(function) and hasattr(function, _MARKER):
                setattr(self, attribute, _attributed(function, name, who))

    def __repr__(self) -> str:
        return repr(self._plugin)


def _attributed(function: Callable, name: str, who: str) -> Callable:
    """``function`` run with ``(name, who)`` as the current supplier, its errors (other than
    :class:`PluginError`) turned into a PluginError naming the plugin. ``functools.wraps``
    keeps the marker (tryfirst, trylast, wrapper) and lets pluggy read the real signature;
    a wrapper stays a generator function, attributed at every step pluggy drives it."""
    hook = function.__name__

    if not inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            with _Supplying(name, who, hook):
                return function(*args, **kwargs)

        return call

    @functools.wraps(function)
    def steps(*args: Any, **kwargs: Any) -> Any:
        inner = function(*args, **kwargs)
        sent, thrown = None, None
        while True:
            try:
                with _Supplying(name, who, hook, passing=thrown):
                    yielded = inner.send(sent) if thrown is None else inner.throw(thrown)
            except StopIteration as stop:
                return stop.value
            try:
                sent, thrown = (yield yielded), None
            except BaseException as error:  # pluggy throws the hook's outcome in: hand it on
                sent, thrown = None, error

    return steps


class _Supplying:
    """Sets the current supplier for a block and names it in any error the block raises
    (except the one handed in from outside, ``passing``)."""

    def __init__(self, name: str, who: str, hook: str, passing: BaseException | None = None):
        self.supplier, self.hook, self.passing = (name, who), hook, passing

    def __enter__(self) -> None:
        self.token = _SUPPLIER.set(self.supplier)

    def __exit__(self, kind, error, traceback) -> bool:
        _SUPPLIER.reset(self.token)
        if not isinstance(error, Exception) or isinstance(error, (PluginError, StopIteration)):
            return False
        if error is self.passing:
            return False
        message = f"{self.supplier[1]}: {self.hook} raised {type(error).__name__}: {error}"
        if isinstance(error, TypeError) and _POSITIONAL_SPEC.search(str(error)):
            message += " (specs take keyword arguments only: BackendSpec(name=..., build=...))"
        raise PluginError(message) from error


def _recorder(spec_type: type, table: dict[str, Registered], origins: dict) -> Callable:
    """The ``register`` callback of one hook: validates each spec and files it under the
    plugin whose implementation is running."""
    kind = spec_type.__name__

    def register(spec: Any) -> None:
        supplier = _SUPPLIER.get()
        if supplier is None:
            raise PluginError(f"register({kind}) was called outside an xbench hook")
        plugin, who = supplier
        problem = _spec_problem(spec, spec_type)
        if problem:
            raise PluginError(f"{who} registered an invalid {kind}: {problem}")
        if spec.name in table:
            first = table[spec.name]
            raise PluginError(
                f"{kind} name {spec.name!r} is already registered: by "
                f"{_who(first.plugin, first.distribution)} and again by {who}; uninstall one "
                f"or skip it with {DISABLE_ENV}"
            )
        table[spec.name] = Registered(spec, plugin, *origins.get(plugin, (None, None)))

    return register


def _spec_problem(spec: Any, spec_type: type) -> str | None:
    if not isinstance(spec, spec_type):
        return f"expected {spec_type.__name__}, got {type(spec).__name__}"
    if not isinstance(spec.name, str) or not _NAME.fullmatch(spec.name):
        return f"name {spec.name!r} must be lower-case letters, digits and _ ({_NAME.pattern})"
    if isinstance(spec, TaskSpec) and spec.modality not in MODALITIES:
        allowed = ", ".join(MODALITIES)
        return f"modality {spec.modality!r} of {spec.name!r} is not one of: {allowed}"
    if not callable(spec.build):
        return f"build of {spec.name!r} is not callable"
    if not _takes_one_argument(spec.build):
        return f"build of {spec.name!r} must take one argument, the options instance"
    reason = check_options_class(spec.options)
    if reason:
        return f"{spec.name!r}: {reason}"
    if "name" in {f.name for f in fields(spec.options)}:
        return f"{spec.name!r}: an option may not be called 'name' (it selects the config node)"
    return None


def _takes_one_argument(build: Callable) -> bool:
    try:
        inspect.signature(build).bind(None)
    except TypeError:
        return False
    except ValueError:  # no signature to read (some builtins): trust it
        return True
    return True

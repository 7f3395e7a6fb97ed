"""The plugin registry: loads ``xbench`` entry points with pluggy and collects what each
plugin registers, remembering which plugin (and distribution) supplied every entry."""

from __future__ import annotations

import difflib
import functools
import importlib.metadata
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from xbench.api import hooks
from xbench.api.backend import BackendSpec
from xbench.api.errors import PluginError, UserError
from xbench.api.options import check_options_class
from xbench.api.task import TaskSpec

ENTRY_POINT_GROUP = "xbench"
DISABLE_ENV = "XBENCH_DISABLE_PLUGINS"
_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Registered:
    """A backend or task spec with the plugin that supplied it."""

    spec: BackendSpec | TaskSpec
    plugin: str
    distribution: str | None = None
    version: str | None = None


@dataclass
class Registry:
    """Installed backends and tasks by name."""

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
    close = difflib.get_close_matches(str(name), table, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UserError(f"unknown {kind} {name!r}; installed {kind}s: {installed}.{hint}")


def disabled_plugins() -> set[str]:
    """Plugin names listed in ``XBENCH_DISABLE_PLUGINS`` (comma separated)."""
    return {p.strip() for p in os.environ.get(DISABLE_ENV, "").split(",") if p.strip()}


def load_registry(
    extra_plugins: Iterable[tuple[str, Any]] = (), use_entry_points: bool = True
) -> Registry:
    """Load plugins and collect their registrations.

    ``extra_plugins`` are ``(name, module_or_object)`` pairs registered in-process (tests,
    notebooks); entry points of group ``xbench`` are loaded unless disabled.
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
            version = ep.dist.version if ep.dist else None
            try:
                plugin = ep.load()
            except Exception as error:
                raise PluginError(
                    f"plugin {ep.name!r} (distribution {dist or 'unknown'}) failed to load "
                    f"{ep.value!r}: {type(error).__name__}: {error}. "
                    f"Set {DISABLE_ENV}={ep.name} to skip it."
                ) from error
            _register_plugin(pm, ep.name, plugin, dist)
            origins[ep.name] = (dist, version)
    for name, plugin in extra_plugins:
        if name not in skip:
            _register_plugin(pm, name, plugin, None)
            origins[name] = (None, None)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as error:
        name = pm.get_name(error.plugin) or "?"
        raise PluginError(_describe(name, origins, str(error))) from error
    registry = Registry()
    _collect(pm, "xbench_register_backends", BackendSpec, registry.backends, origins)
    _collect(pm, "xbench_register_tasks", TaskSpec, registry.tasks, origins)
    return registry


@functools.cache
def get_registry() -> Registry:
    """The registry of installed plugins, loaded once per process."""
    return load_registry()


def _register_plugin(pm: pluggy.PluginManager, name: str, plugin: Any, dist: str | None) -> None:
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as error:
        raise PluginError(
            f"plugin {name!r} (distribution {dist or 'unknown'}) is not a valid xbench plugin: "
            f"{error}"
        ) from error


def _describe(plugin: str, origins: dict, message: str) -> str:
    dist = origins.get(plugin, (None, None))[0]
    return f"plugin {plugin!r} (distribution {dist or 'unknown'}): {message}"


def _collect(pm, hook_name: str, spec_type: type, table: dict, origins: dict) -> None:
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():  # registration order
        dist, version = origins.get(impl.plugin_name, (None, None))

        def register(spec: Any, _plugin: str = impl.plugin_name, _dist=dist, _ver=version):
            problem = _spec_problem(spec, spec_type)
            if problem:
                raise PluginError(
                    _describe(
                        _plugin, origins, f"registered an invalid {spec_type.__name__}: {problem}"
                    )
                )
            if spec.name in table:
                other = table[spec.name].plugin
                raise PluginError(
                    _describe(
                        _plugin,
                        origins,
                        f"{spec_type.__name__} name "
                        f"{spec.name!r} is already registered by plugin "
                        f"{other!r}",
                    )
                )
            table[spec.name] = Registered(spec, _plugin, _dist, _ver)

        kwargs = {"register": register} if "register" in impl.argnames else {}
        try:
            impl.function(**kwargs)
        except PluginError:
            raise
        except Exception as error:
            raise PluginError(
                _describe(
                    impl.plugin_name, origins, f"{hook_name} raised {type(error).__name__}: {error}"
                )
            ) from error


def _spec_problem(spec: Any, spec_type: type) -> str | None:
    if not isinstance(spec, spec_type):
        return f"expected {spec_type.__name__}, got {type(spec).__name__}"
    if not isinstance(spec.name, str) or not _NAME.fullmatch(spec.name):
        return f"name {spec.name!r} must be lower-case letters, digits and _ ({_NAME.pattern})"
    if not callable(spec.build):
        return f"build of {spec.name!r} is not callable"
    reason = check_options_class(spec.options)
    return f"{spec.name!r}: {reason}" if reason else None

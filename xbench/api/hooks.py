"""The hooks an xbench plugin may implement.

A plugin is a module (or object) with functions decorated by ``xbench.hookimpl`` and named
after the specs below. It is found through the ``xbench`` entry-point group, e.g. in
``pyproject.toml``::

    [project.entry-points.xbench]
    my_attention = "my_package.plugin"

Built-in backends and tasks are registered through exactly the same entry points.

The hooks are called through pluggy, so ``@xbench.hookimpl(tryfirst=True)``,
``trylast=True`` and ``wrapper=True`` / ``hookwrapper=True`` work as pluggy documents:
implementations run last-registered first unless ``tryfirst``/``trylast`` say otherwise,
and a wrapper runs around all of them. Entry points are registered in the order
``importlib.metadata`` lists them, in-process plugins (``load_registry(extra_plugins=…)``)
after them. Whatever the order, each registered spec remembers the plugin whose
implementation called ``register`` (``xbench plugins`` shows it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from xbench.api.backend import BackendSpec
    from xbench.api.task import TaskSpec

PROJECT_NAME = "xbench"
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def xbench_register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Register attention backends.

    Called once per process, when xbench first needs the installed plugins (any command
    that resolves a backend or task name, and again in every launcher or DDP worker
    process), after every plugin has been loaded and before any config is composed.

    :param register: call ``register(BackendSpec(...))`` once per backend. The spec's
        ``options`` dataclass becomes the Hydra config node ``backend=<name>``, so no YAML
        file is needed. ``register`` raises :class:`xbench.PluginError` for a spec that is
        not a ``BackendSpec``, a badly formed or already taken name, a ``build`` that does
        not take one argument, or options that are not a dataclass with defaults.

    The return value is ignored. Raising (``register``'s own errors included) stops the
    loading of every plugin: the command exits with one line naming this plugin, its
    distribution and the error; ``XBENCH_DISABLE_PLUGINS=<plugin>`` skips the plugin.
    """


@hookspec
def xbench_register_tasks(register: Callable[[TaskSpec], None]) -> None:
    """Register sequence-to-sequence tasks.

    Called once per process, right after :func:`xbench_register_backends`.

    :param register: call ``register(TaskSpec(...))`` once per task. The spec's ``options``
        dataclass becomes the Hydra config node ``task=<name>``. Validation is the same as
        for backends, and ``modality`` must be one of :data:`xbench.api.task.MODALITIES`.

    The return value is ignored. Raising stops the loading as for
    :func:`xbench_register_backends`.
    """

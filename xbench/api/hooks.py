"""The hooks an xbench plugin may implement.

A plugin is a module (or object) with functions decorated by ``xbench.hookimpl`` and named
after the specs below. It is found through the ``xbench`` entry-point group, e.g. in
``pyproject.toml``::

    [project.entry-points.xbench]
    my_attention = "my_package.plugin"

Built-in backends and tasks are registered through exactly the same entry points.
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

    Call ``register(BackendSpec(...))`` once per backend. The spec's ``options`` dataclass
    becomes the Hydra config node ``backend=<name>``, so no YAML file is needed. ``register``
    raises :class:`xbench.api.errors.PluginError` for a spec that is not a ``BackendSpec``, a
    name already taken, or options that are not a dataclass with defaults.
    """


@hookspec
def xbench_register_tasks(register: Callable[[TaskSpec], None]) -> None:
    """Register sequence-to-sequence tasks.

    Call ``register(TaskSpec(...))`` once per task. The spec's ``options`` dataclass becomes
    the Hydra config node ``task=<name>``. Validation is the same as for backends.
    """

"""The module paths plugins used before the layout by stage (xbench 0.1), kept importable.

``from xbench.backend import AttentionBackend`` still works and warns (DeprecationWarning)
where the name lives now; new code imports from the top-level ``xbench`` namespace. Each
old path is an alias of its new module, so classes and functions are the same objects.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

# old module -> the public module that holds its names now
MOVED = {
    "xbench.hookspecs": "xbench.api.hooks",
    "xbench.backend": "xbench.api.backend",
    "xbench.task": "xbench.api.task",
    "xbench.options": "xbench.api.options",
    "xbench.errors": "xbench.api.errors",
    "xbench.data": "xbench.taskkit.data",
    "xbench.cache": "xbench.taskkit.cache",
    "xbench.text": "xbench.taskkit.text",
    "xbench.hf": "xbench.taskkit.hf",
}


class _Alias(importlib.abc.Loader):
    """Loads an old path as the module that replaced it."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.own_spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.target}; import its names from xbench instead "
            f"(e.g. `from xbench import ...`)",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(self.target)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the target is imported. Only give it back its own spec, which
        the import system replaced with the alias's."""
        module.__spec__ = self.own_spec


class MovedModules(importlib.abc.MetaPathFinder):
    """Finds the old paths in :data:`MOVED`; every other import passes through."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(MOVED[fullname]))


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())

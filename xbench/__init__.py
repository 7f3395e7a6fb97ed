"""xbench: a plug-in benchmark suite for cross-attention.

Plugins implement the hooks in :mod:`xbench.hookspecs` with the :data:`hookimpl` marker and
declare an entry point in the ``xbench`` group; built-in backends and tasks do the same.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

PROJECT_NAME = "xbench"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

try:
    __version__ = version("xbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["PROJECT_NAME", "__version__", "hookimpl", "hookspec"]

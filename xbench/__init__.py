"""xbench: a plug-in benchmark suite for cross-attention.

This namespace is the public API: what a backend or task plugin may use. Plugins implement
the hooks in :mod:`xbench.api.hooks` with the :data:`hookimpl` marker and declare an entry
point in the ``xbench`` group; built-in backends and tasks do the same. The contracts live
in :mod:`xbench.api`, the helpers for task authors in :mod:`xbench.taskkit`, the backend
conformance kit in :mod:`xbench.testing`. Every other module is internal.

Names are imported on first use, so ``import xbench`` stays light for the CLI.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from xbench import moved
from xbench.api.hooks import PROJECT_NAME, hookimpl, hookspec

moved.install()  # the module paths of xbench 0.1 keep working, with a warning

try:
    __version__ = version("xbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

# public name -> the module that defines it
_EXPORTS = {
    "AttentionBackend": "xbench.api.backend",
    "PreparedMemory": "xbench.api.backend",
    "QueryPositions": "xbench.api.backend",
    "BackendSpec": "xbench.api.backend",
    "default_scale": "xbench.api.backend",
    "masked_softmax_weights": "xbench.api.backend",
    "zero_empty_rows": "xbench.api.backend",
    "Task": "xbench.api.task",
    "TaskSpec": "xbench.api.task",
    "ExampleStatistics": "xbench.api.task",
    "Tokenizer": "xbench.api.task",
    "Frontend": "xbench.api.task",
    "MODALITIES": "xbench.api.task",
    "option": "xbench.api.options",
    "UserError": "xbench.api.errors",
    "PluginError": "xbench.api.errors",
    "pad": "xbench.taskkit.data",
    "SplitDataModule": "xbench.taskkit.data",
    "split_val_test": "xbench.taskkit.data",
    "LoaderOptions": "xbench.taskkit.options",
    "TextLoaderOptions": "xbench.taskkit.options",
    "SplitOptions": "xbench.taskkit.options",
    "data_source": "xbench.taskkit.options",
    "with_default": "xbench.taskkit.options",
    "cached_json": "xbench.taskkit.cache",
    "cached_bytes": "xbench.taskkit.cache",
    "cache_path": "xbench.taskkit.cache",
    "WordTokenizer": "xbench.taskkit.text",
    "TokenFrontend": "xbench.taskkit.text",
    "sinusoidal_positions": "xbench.taskkit.text",
    "read_text": "xbench.taskkit.files",
    "read_lines": "xbench.taskkit.files",
    "read_json": "xbench.taskkit.files",
    "read_json_lines": "xbench.taskkit.files",
    "load_hf_split": "xbench.taskkit.hf",
    "HFSourceOptions": "xbench.taskkit.hf",
    "pick_fastest": "xbench.measure.candidates",
}

__all__ = [
    "PROJECT_NAME",
    "__version__",
    "hookimpl",
    "hookspec",
    "AttentionBackend",
    "PreparedMemory",
    "QueryPositions",
    "BackendSpec",
    "default_scale",
    "masked_softmax_weights",
    "zero_empty_rows",
    "Task",
    "TaskSpec",
    "ExampleStatistics",
    "Tokenizer",
    "Frontend",
    "MODALITIES",
    "option",
    "UserError",
    "PluginError",
    "pad",
    "SplitDataModule",
    "split_val_test",
    "LoaderOptions",
    "TextLoaderOptions",
    "SplitOptions",
    "data_source",
    "with_default",
    "cached_json",
    "cached_bytes",
    "cache_path",
    "WordTokenizer",
    "TokenFrontend",
    "sinusoidal_positions",
    "read_text",
    "read_lines",
    "read_json",
    "read_json_lines",
    "load_hf_split",
    "HFSourceOptions",
    "pick_fastest",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from xbench.api.backend import (
        AttentionBackend,
        BackendSpec,
        PreparedMemory,
        QueryPositions,
        default_scale,
        masked_softmax_weights,
        zero_empty_rows,
    )
    from xbench.api.errors import PluginError, UserError
    from xbench.api.options import option
    from xbench.api.task import (
        MODALITIES,
        ExampleStatistics,
        Frontend,
        Task,
        TaskSpec,
        Tokenizer,
    )
    from xbench.measure.candidates import pick_fastest
    from xbench.taskkit.cache import cache_path, cached_bytes, cached_json
    from xbench.taskkit.data import SplitDataModule, pad, split_val_test
    from xbench.taskkit.files import read_json, read_json_lines, read_lines, read_text
    from xbench.taskkit.hf import HFSourceOptions, load_hf_split
    from xbench.taskkit.options import (
        LoaderOptions,
        SplitOptions,
        TextLoaderOptions,
        data_source,
        with_default,
    )
    from xbench.taskkit.text import TokenFrontend, WordTokenizer, sinusoidal_positions

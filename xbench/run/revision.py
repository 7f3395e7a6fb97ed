"""What code and inputs a run used, computed before any data is built.

Resume trusts a finished record only when it was made by the same code on the same inputs.
The code is the source of the xbench core plus the top-level packages that supplied the
backend and the task (built-ins and third-party plugins alike), hashed file by file, so an
uncommitted edit counts as a new revision while a commit that changes no source does not.
Embedded data is generated deterministically from the task options (in the config hash)
by the task's code (hashed here); local files a task option names are hashed by content,
folders by their listing (names, sizes, modification times).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xbench.api.backend import BackendSpec
from xbench.api.task import TaskSpec
from xbench.records.result import Revision

_SKIPPED_DIRS = {"__pycache__"}


def run_revision(backend: BackendSpec, task: TaskSpec, task_options: Any) -> Revision:
    """The code and input hashes of a planned run."""
    roots = {_source_root("xbench")}
    for build in (backend.build, task.build):
        module = inspect.getmodule(build)
        if module is not None and getattr(module, "__file__", None):
            roots.add(_source_root(module.__name__))
    code = hashlib.sha256()
    for root in sorted(roots):
        code.update(source_hash(root).encode())
    return Revision(code=code.hexdigest()[:16], inputs=inputs_hash(task_options))


def _source_root(module_name: str) -> Path:
    """The folder (or single file) of the top-level package of ``module_name``."""
    top = sys.modules.get(module_name.split(".")[0]) or sys.modules[module_name]
    origin = Path(top.__file__ or sys.modules[module_name].__file__)
    return origin.parent if origin.name == "__init__.py" else origin


@functools.cache
def source_hash(root: Path) -> str:
    """sha256 over the relative paths and contents of every file under ``root``."""
    digest = hashlib.sha256()
    for path in _files(root):
        digest.update(str(path.relative_to(root.parent)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not _SKIPPED_DIRS & set(path.relative_to(root).parts):
            yield path


def inputs_hash(options: Any) -> str | None:
    """A hash of the local inputs that string task options name, or None when none do:
    a file by its content, a folder by the names, sizes and times of what it holds."""
    digest, found = hashlib.sha256(), False
    for value in sorted(_strings(dataclasses.asdict(options))):
        path = Path(value).expanduser()
        if not ("/" in value or path.suffix) or not path.exists():
            continue
        found = True
        digest.update(value.encode() + b"\0")
        if path.is_file():
            digest.update(_content_hash(path).encode())
        for file in _files(path) if path.is_dir() else ():
            stat = file.stat()
            digest.update(f"{file.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16] if found else None


def _content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)

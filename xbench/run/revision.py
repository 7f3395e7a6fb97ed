"""What code and inputs a run used, computed before any data is built.

Resume trusts a finished record only when it was made by the same code on the same inputs.
The code is the source of the xbench core plus the top-level packages that supplied the
backend and the task (built-ins and third-party plugins alike), hashed file by file, so an
uncommitted edit counts as a new revision while a commit that changes no source does not.
Embedded data is generated deterministically from the task options (in the config hash)
by the task's code (hashed here); local files a task option names are hashed by content,
folders by a bounded listing (see :func:`inputs_hash`).

The hash runs before the task's loader, so it never opens anything but a regular file and
never fails: a FIFO, device or unreadable entry is hashed by what it is, and the loader's
own check then names the problem in one line.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import os
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xbench.api.backend import BackendSpec
from xbench.api.task import TaskSpec
from xbench.records.result import Revision
from xbench.taskkit.files import path_kind

_SKIPPED_DIRS = {"__pycache__"}
LISTING_DEPTH = 3  # folder levels of a data folder that its hash lists
LISTING_CAP = 10_000  # entries of a data folder that its hash lists, at most


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
    """A hash of the local inputs that string task options name, or None when none do.

    A regular file counts by its content; a folder by a bounded listing: the names, sizes
    and modification times of its first :data:`LISTING_DEPTH` levels, breadth first and
    at most :data:`LISTING_CAP` entries, so a huge folder is not walked whole (an edit
    deeper down or past the cap that leaves the listing unchanged goes unseen). A name
    that is no path but a prefix (``data/train`` for ``data/train.en``) counts by the
    files it begins. Anything else (a FIFO, a device, an entry that cannot be read) is
    hashed by its kind, unopened.
    """
    digest, found = hashlib.sha256(), False
    for value in sorted(_strings(dataclasses.asdict(options))):
        path = Path(value).expanduser()
        if not ("/" in value or path.suffix):
            continue
        targets = [path] if path_kind(path) != "missing" else _prefixed(path)
        for target in targets:
            found = True
            digest.update(str(target).encode() + b"\0")
            digest.update(_input_hash(target).encode())
    return digest.hexdigest()[:16] if found else None


def _prefixed(prefix: Path) -> list[Path]:
    """The files of ``prefix``'s folder whose names begin ``<prefix name>.`` (bounded)."""
    try:
        with os.scandir(prefix.parent) as entries:
            names = [entry.name for _, entry in zip(range(LISTING_CAP), entries, strict=False)]
    except OSError:
        return []
    return [prefix.parent / name for name in sorted(names) if name.startswith(prefix.name + ".")]


def _input_hash(path: Path) -> str:
    kind = path_kind(path)
    if kind == "file":
        return _content_hash(path)
    if kind == "folder":
        return _listing_hash(path)
    return kind


def _content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:  # the loader's check reports it
        return f"unreadable: {error.strerror or error}"
    return digest.hexdigest()


def _listing_hash(root: Path) -> str:
    """sha256 of ``root``'s bounded listing (see :func:`inputs_hash`)."""
    digest, seen = hashlib.sha256(), 0
    queue = deque([(root, 1)])
    while queue and seen < LISTING_CAP:
        folder, depth = queue.popleft()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError:
            digest.update(f"{folder.relative_to(root)}\0unreadable\0".encode())
            continue
        for entry in entries[: LISTING_CAP - seen]:
            seen += 1
            name = Path(entry.path).relative_to(root)
            try:
                info = entry.stat()
                is_dir = entry.is_dir()
            except OSError:
                digest.update(f"{name}\0unreadable\0".encode())
                continue
            digest.update(f"{name}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
            if is_dir and depth < LISTING_DEPTH:
                queue.append((Path(entry.path), depth + 1))
    if queue or seen >= LISTING_CAP:
        digest.update(f"listing capped at {LISTING_CAP} entries".encode())
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

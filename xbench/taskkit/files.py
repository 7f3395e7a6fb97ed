"""Reading a user's data files: UTF-8 text, lines and JSON, checked as they are read.

Every defect the user can fix — a missing or unreadable file, bytes that are not UTF-8,
an empty file or line, JSON that does not parse — raises one line of
:class:`~xbench.api.errors.UserError` naming the file (``what`` says which one: "SQuAD
file", "transcript file") and, where there is one, the line, before anything is trained.
A UTF-8 byte-order mark is dropped.

A path is checked with :func:`existing_path` before it is opened: a FIFO, device or socket
would block or stream forever, so anything but a regular file or a folder is refused.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Literal

from xbench.api.errors import UserError

__all__ = ["existing_path", "path_kind", "read_json", "read_json_lines", "read_lines", "read_text"]

PathKind = Literal["file", "folder", "either"]
_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def path_kind(path: str | Path) -> str:
    """What ``path`` names, found with one ``stat`` (links followed, nothing opened):
    ``"file"``, ``"folder"``, ``"missing"``, ``"unreachable"`` (stat refused) or a
    description of anything else (``"a FIFO (named pipe)"``, ``"a socket"``, ...)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreachable"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    return next((name for test, name in _SPECIAL_KINDS if test(mode)), "not a file or folder")


def existing_path(path: str | Path, kind: PathKind = "file", what: str = "file") -> Path:
    """``path`` if it is an existing regular file (``kind="file"``), folder (``"folder"``) or
    either; otherwise one line of :class:`UserError` naming it (``what`` says which one).

    Nothing is opened, so a FIFO or device is refused instead of blocking the run.
    """
    path = Path(path)
    found = path_kind(path)
    if found == "missing":
        raise UserError(f"{what} not found: {path}")
    if found == "unreachable":
        raise UserError(f"cannot read {what} {path}: {_stat_error(path)}")
    if found == kind or (kind == "either" and found in ("file", "folder")):
        return path
    wanted = {"file": "a regular file", "folder": "a folder"}.get(kind, "a file or folder")
    shown = {"file": "a file", "folder": "a folder"}.get(found, found)
    raise UserError(f"cannot read {what} {path}: it is {shown}, not {wanted}")


def _stat_error(path: Path) -> str:
    try:
        os.stat(path)
    except OSError as error:
        return error.strerror or str(error)
    return "it changed while being checked"


def read_text(path: str | Path, what: str = "file") -> str:
    """The whole text of a UTF-8 file."""
    path = existing_path(path, "file", what)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except OSError as error:
        raise UserError(f"cannot read {what} {path}: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise UserError(f"{what} {path} line {line}: not UTF-8 (byte {error.start})") from None
    if not text.strip():
        raise UserError(f"{what} {path} is empty")
    return text


def read_lines(path: str | Path, what: str = "file") -> list[str]:
    """The lines of a UTF-8 text file, stripped; none may be empty."""
    lines = read_text(path, what).splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise UserError(f"{what} {path} line {number} is empty")
    return [line.strip() for line in lines]


def read_json(path: str | Path, what: str = "file") -> Any:
    """The JSON document a file holds."""
    try:
        return json.loads(read_text(path, what))
    except json.JSONDecodeError as error:
        raise UserError(
            f"{what} {path} line {error.lineno}, column {error.colno}: not valid JSON ({error.msg})"
        ) from None


def read_json_lines(path: str | Path, what: str = "file") -> list[Any]:
    """One JSON value per line (JSONL); no line may be empty."""
    rows = []
    for number, line in enumerate(read_lines(path, what), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise UserError(f"{what} {path} line {number}: not valid JSON ({error.msg})") from None
    return rows

"""Reading a user's data files: UTF-8 text, lines and JSON, checked as they are read.

Every defect the user can fix — a missing or unreadable file, bytes that are not UTF-8,
an empty file or line, JSON that does not parse — raises one line of
:class:`~xbench.api.errors.UserError` naming the file (``what`` says which one: "SQuAD
file", "transcript file") and, where there is one, the line, before anything is trained.
A UTF-8 byte-order mark is dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xbench.api.errors import UserError

__all__ = ["read_json", "read_json_lines", "read_lines", "read_text"]


def read_text(path: str | Path, what: str = "file") -> str:
    """The whole text of a UTF-8 file."""
    path = Path(path)
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

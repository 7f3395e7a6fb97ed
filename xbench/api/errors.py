"""Errors a user can fix: the CLI prints their message alone (no traceback) and exits 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in what the user asked for: a name, a value, a file."""


class PluginError(UserError):
    """A plugin failed to load or registered something that breaks the contract."""


def first_line(text: object) -> str:
    """The first non-blank line of a message, "" when it has none: the one line a table cell,
    a console line or a typed reason shows of an error (torch, Hydra and tracebacks run on)."""
    lines = str(text if text is not None else "").strip().splitlines()
    return lines[0].strip() if lines else ""


def did_you_mean(name: object, options: Iterable[object]) -> str:
    """`` Did you mean 'x'?`` for the closest option, or "": the hint every unknown-name
    error ends with."""
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""

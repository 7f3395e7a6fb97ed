"""Errors a user can fix: the CLI prints their message alone (no traceback) and exits 2."""


class UserError(Exception):
    """A mistake in what the user asked for: a name, a value, a file."""


class PluginError(UserError):
    """A plugin failed to load or registered something that breaks the contract."""


def first_line(text: object) -> str:
    """The first non-blank line of a message, "" when it has none: the one line a table cell,
    a console line or a typed reason shows of an error (torch, Hydra and tracebacks run on)."""
    lines = str(text if text is not None else "").strip().splitlines()
    return lines[0].strip() if lines else ""

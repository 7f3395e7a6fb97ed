"""Errors a user can fix: the CLI prints their message alone (no traceback) and exits 2."""


class UserError(Exception):
    """A mistake in what the user asked for: a name, a value, a file."""


class PluginError(UserError):
    """A plugin failed to load or registered something that breaks the contract."""

"""``xbench check-backend NAME [setting=value ...] [pytest args]``: run the conformance kit
(:mod:`xbench.testing`) on one installed backend.

A backend author, or a user about to trust a plugin's figures, gets the whole kit without
writing a test file: this writes a one-class test module into a temporary folder and hands
it to pytest, so every pytest option works (``-x``, ``-k padding``, ``-v``,
``--junitxml=report.xml``) and the exit status is pytest's.

``setting=value`` arguments are what a test class would declare: the kit's switches
(``uses_queries=false`` for a backend that ignores q and k, ``weights_normalised=false``,
``padding_equals_truncation=false``) and the backend's options (``backend.kernel=math``).

After the kit, one line reports how far the backend is from exact softmax attention
(:func:`xbench.testing.deviation_from_exact`): for an ``exact=False`` backend the kit checks
only that it agrees with its own ``attention_weights``, so this is the figure that says how
good the approximation is.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from xbench.api.errors import UserError

USAGE = "usage: xbench check-backend NAME [setting=value ...] [pytest args]"
KIT_SWITCHES = ("uses_queries", "weights_normalised", "padding_equals_truncation")
_SETTING = re.compile(r"(?P<key>[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*)=(?P<value>.*)", re.I)
_BOOLEANS = {"true": True, "false": False}

_TEST_MODULE = '''\
"""Written by `xbench check-backend`: the conformance kit applied to one backend."""

from xbench.testing import BackendConformance


class TestConformance(BackendConformance):
    backend_name = {name!r}
    options = {options!r}
{switches}'''

# Its own ini file makes the temporary folder pytest's rootdir, so the caller's project
# (its pytest settings and conftest.py files) does not leak into the check.
_PYTEST_INI = "[pytest]\n"


def check_backend_command(args: list[str]) -> int:
    """Validate NAME and the settings, then run the kit; returns pytest's exit code.

    Raises :class:`UserError` for a missing or unknown name (listing the installed backends),
    an unknown setting or invalid option value, and when pytest is not installed.
    """
    if not args or args[0].startswith("-"):
        raise UserError(f"{USAGE} (pytest args, e.g. -x or -k padding, go last)")
    name, rest = args[0], args[1:]
    switches, options, pytest_args = _split_settings(rest)

    from xbench.api.options import build_options
    from xbench.registry import get_registry

    spec = get_registry().backend(name)  # unknown name -> UserError with the installed ones
    built_options = build_options(spec.options, options, "backend")  # bad option -> UserError
    try:
        import pytest
    except ImportError:
        raise UserError("check-backend needs pytest: pip install 'xbench[test]'") from None
    status = _run_kit(pytest, name, switches, options, pytest_args)
    print(f"{name}: {_deviation_line(spec.build(built_options))}")
    return status


def _run_kit(pytest: Any, name: str, switches: dict, options: dict, pytest_args: list[str]) -> int:
    """The kit as a one-class test module in a temporary folder; pytest's exit code."""
    source = _TEST_MODULE.format(
        name=name,
        options=options,
        switches="".join(f"    {key} = {value!r}\n" for key, value in switches.items()),
    )
    with tempfile.TemporaryDirectory(prefix="xbench-check-") as folder:
        module = Path(folder) / f"test_{name}_conformance.py"
        module.write_text(source)
        (Path(folder) / "pytest.ini").write_text(_PYTEST_INI)
        flags = ["--rootdir", folder, "--import-mode=importlib", "-p", "no:cacheprovider"]
        try:
            return int(pytest.main([*flags, *pytest_args, str(module)]))
        finally:
            _forget_modules_under(Path(folder))


def _deviation_line(backend: Any) -> str:
    """The deviation report, or why there is none; never raises (the kit has judged)."""
    from xbench.testing import deviation_from_exact

    try:
        return str(deviation_from_exact(backend))
    except Exception as error:  # unsupported input, or a forward the kit already failed
        return f"deviation from exact softmax attention not measured: {error}"


def _forget_modules_under(folder: Path) -> None:
    """Drop the generated module from ``sys.modules``: pytest's importlib mode would otherwise
    hand the next check in this process (same file name, other settings) the stale one."""
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).is_relative_to(folder):
            del sys.modules[name]


def _split_settings(args: list[str]) -> tuple[dict[str, bool], dict[str, Any], list[str]]:
    """Leading ``key=value`` arguments -> (kit switches, backend options); the rest is pytest's."""
    switches: dict[str, bool] = {}
    options: dict[str, Any] = {}
    while args and (match := _SETTING.fullmatch(args[0])):
        key, value = match["key"], match["value"]
        args = args[1:]
        if key.startswith("backend."):
            options[key.removeprefix("backend.")] = _parse_value(value)
        elif key in KIT_SWITCHES and value.lower() in _BOOLEANS:
            switches[key] = _BOOLEANS[value.lower()]
        else:
            allowed = ", ".join(f"{s}=true|false" for s in KIT_SWITCHES)
            raise UserError(f"unknown setting {key}={value}; allowed: {allowed}, backend.OPTION=V")
    return switches, options, args


def _parse_value(text: str) -> Any:
    """A command-line value as JSON reads it (``3``, ``-2.5``, ``true``, ``null``), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text

"""Built-in plugins, tasks and the example packages use xbench's public API only: the
``xbench`` namespace, ``xbench.api.*``, ``xbench.taskkit.*`` and ``xbench.testing``. Every
other module is internal, free to change without breaking a plugin."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import xbench

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_PACKAGES = ("xbench.api", "xbench.taskkit")
PUBLIC_MODULES = ("xbench", "xbench.testing", *PUBLIC_PACKAGES)
SOURCES = sorted(
    path
    for folder in ("plugins", "tasks", "examples")
    for path in (ROOT / folder).rglob("*.py")
    if ".venv" not in path.parts
)


def is_public(module: str) -> bool:
    return module in PUBLIC_MODULES or module.startswith(tuple(f"{p}." for p in PUBLIC_PACKAGES))


def is_xbench(module: str) -> bool:
    return module == "xbench" or module.startswith("xbench.")


def internal_uses(path: Path) -> list[str]:
    """``line: what`` for every use of an internal xbench module in ``path``, function-level
    imports included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
            if node.module == "xbench":  # `from xbench import measure` names a module too
                modules += [f"xbench.{a.name}" for a in node.names if a.name not in xbench.__all__]
        elif isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "xbench":
            public = node.attr in xbench.__all__ or is_public(f"xbench.{node.attr}")
            modules = [] if public else [f"xbench.{node.attr}"]
        else:
            continue
        found += [f"{node.lineno}: {m}" for m in modules if is_xbench(m) and not is_public(m)]
    return sorted(found, key=lambda use: int(use.split(":")[0]))


def test_the_scan_sees_the_plugins_tasks_and_examples():
    names = {path.relative_to(ROOT).as_posix() for path in SOURCES}
    assert {"plugins/sparse.py", "tasks/qa/__init__.py"} <= names
    assert "examples/xbench-reverse/xbench_reverse/__init__.py" in names
    assert "examples/xbench-sigmoid/tests/test_conformance.py" in names


def test_the_scan_finds_internal_imports_in_every_form(tmp_path):
    source = tmp_path / "plugin.py"
    source.write_text(
        "import xbench\n"
        "import xbench.registry\n"
        "from xbench.run.model import EncoderDecoder\n"
        "from xbench import measure, option\n"
        "from xbench.api.backend import BackendSpec\n"
        "def late():\n"
        "    from xbench.measure.clock import time_call\n"
        "    return xbench.records, xbench.hookimpl\n"
    )

    assert internal_uses(source) == [
        "2: xbench.registry",
        "3: xbench.run.model",
        "4: xbench.measure",
        "7: xbench.measure.clock",
        "8: xbench.records",
    ]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_imports_only_the_public_api(path):
    assert internal_uses(path) == [], f"{path.relative_to(ROOT)} uses internal xbench modules"


def test_every_public_name_resolves_and_import_xbench_stays_light():
    for name in xbench.__all__:
        assert getattr(xbench, name) is not None, name
    probe = "import sys, xbench; print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr

"""Plugins written for xbench 0.1 keep working: the old module paths are aliases of the new
public modules (with a DeprecationWarning), and the 0.1 README backend needs one change —
its ``BackendSpec`` takes keywords."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
import torch

from xbench.api.backend import masked_softmax_weights
from xbench.api.errors import PluginError
from xbench.moved import MOVED
from xbench.registry import load_registry

# The backend example of the 0.1 README, as a plugin author copied it.
README_0_1 = """
from dataclasses import dataclass
import torch, xbench
from xbench.backend import AttentionBackend, BackendSpec, masked_softmax_weights
from xbench.options import option


@dataclass
class SharpOptions:
    temperature: float = option(0.5, help="softmax temperature", min=1e-3)


class SharpAttention(AttentionBackend):
    def __init__(self, options):
        super().__init__()
        self.t = options.temperature

    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        scale = (q.shape[-1] ** -0.5 if scale is None else scale) / self.t
        return masked_softmax_weights(q, k, key_padding_mask, scale) @ v


@xbench.hookimpl
def xbench_register_backends(register):
    register(
        BackendSpec(
            "sharp",
            SharpAttention,
            SharpOptions,
            exact=False,
            description="softmax at a lower temperature",
        )
    )
"""
POSITIONAL = """        BackendSpec(
            "sharp",
            SharpAttention,
            SharpOptions,
            exact=False,"""
KEYWORDS = """        BackendSpec(
            name="sharp", build=SharpAttention, options=SharpOptions,
            exact=False,"""


def plugin_module(tmp_path, monkeypatch, name: str, source: str):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    for cached in (name, *MOVED):  # imported afresh, as in a new process
        monkeypatch.delitem(sys.modules, cached, raising=False)
    return importlib.import_module(name)


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_path_is_its_new_module_and_warns_where_it_went(old, new, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert module.__spec__.name == new  # the new module keeps its own identity


def test_the_0_1_readme_backend_runs_with_keywords_in_its_spec(tmp_path, monkeypatch):
    assert POSITIONAL in README_0_1
    source = README_0_1.replace(POSITIONAL, KEYWORDS)
    with pytest.warns(DeprecationWarning):
        module = plugin_module(tmp_path, monkeypatch, "sharp_0_1", source)

    spec = load_registry([("sharp", module)], use_entry_points=False).backend("sharp")
    backend = spec.build(spec.options(temperature=0.25))
    q, k, v = (torch.randn(2, 2, 3, 8) for _ in range(3))
    mask = torch.tensor([[True, True, True], [True, False, False]])

    expected = masked_softmax_weights(q, k, mask, 8**-0.5 / 0.25) @ v
    torch.testing.assert_close(backend(q, k, v, key_padding_mask=mask), expected)


def test_the_0_1_readme_backend_as_written_is_told_the_one_change(tmp_path, monkeypatch):
    with pytest.warns(DeprecationWarning):
        module = plugin_module(tmp_path, monkeypatch, "sharp_positional", README_0_1)
    with pytest.raises(PluginError, match=r"'sharp'.*keyword arguments only"):
        load_registry([("sharp", module)], use_entry_points=False)

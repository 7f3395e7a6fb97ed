"""pytest-benchmark micro-benchmarks of every installed backend at a few representative shapes.

``python -m pytest benchmarks --benchmark-disable`` runs each case once (a smoke test);
``python -m pytest benchmarks --benchmark-json=out.json`` measures, and
``--benchmark-compare`` compares with a saved run. On CUDA each timed call ends with
``torch.cuda.synchronize()`` so the clock sees the kernel, not just its launch.
"""

from __future__ import annotations

import pytest
import torch

from xbench.registry import get_registry

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pytest_generate_tests(metafunc):
    if "backend_name" in metafunc.fixturenames:
        metafunc.parametrize("backend_name", sorted(get_registry().backends))


@pytest.fixture
def backend(backend_name):
    """The backend built with its default options."""
    spec = get_registry().backend(backend_name)
    return spec.build(spec.options())

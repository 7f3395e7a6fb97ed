"""Real backends that cannot be measured, each in its own way: what typed measurement
results (unsupported, oom, failed, no gradient) are tested with."""

from __future__ import annotations

import torch

from xbench.api.backend import AttentionBackend
from xbench_plugins.naive import NaiveAttention


class Refusing(AttentionBackend):
    """Says, through ``supports``, that it cannot run any input."""

    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        raise AssertionError("never called")

    def supports(self, q, k, v, key_padding_mask=None):
        return "needs head_dim 128"


class OutOfHostMemory(NaiveAttention):
    """Fails as the CPU allocator does: a plain RuntimeError."""

    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 1 TB")


class OutOfDeviceMemory(NaiveAttention):
    """Fails as CUDA does: torch's typed out-of-memory error, on two lines."""

    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB\nmore")


class Broken(NaiveAttention):
    """Any other error of a kernel (its message may run on for several lines)."""

    def __init__(self, message: str = "bad kernel") -> None:
        super().__init__()
        self.message = message

    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        raise ValueError(self.message)


class Constant(AttentionBackend):
    """An output that does not depend on q, k, v: nothing to differentiate."""

    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        return torch.zeros_like(q)

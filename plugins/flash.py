"""``flash``: PyTorch's fused ``scaled_dot_product_attention`` with an explicit kernel choice.

``kernel=auto`` tries, per input signature, the fused kernels that accept the input
(cuDNN, FlashAttention-2, memory-efficient on CUDA; the fused flash kernel on CPU), times
them when more than one runs, and keeps the fastest. A forced kernel that cannot run an
input is reported by ``supports()``; ``describe()`` names the kernel that really ran.
"""

from __future__ import annotations

import functools
import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

import xbench
from xbench.api.backend import AttentionBackend, BackendSpec
from xbench.api.options import option

KERNELS = {
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}
AUTO_CANDIDATES = {"cuda": ("cudnn", "flash", "efficient"), "cpu": ("flash",)}


@dataclass
class FlashOptions:
    kernel: str = option(
        "auto",
        help="SDPA kernel: auto picks the fastest fused kernel that accepts the input",
        choices=("auto", *KERNELS),
    )


class FlashAttention(AttentionBackend):
    """Fused SDPA; padded keys become a boolean mask broadcast over heads and queries."""

    def __init__(self, kernel: str = "auto") -> None:
        super().__init__()
        self.kernel = kernel
        self._chosen: dict[tuple, str] = {}
        self.last_kernel: str | None = None
        self.tune_seconds = 0.0

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> Tensor:
        mask, empty = _sdpa_mask(key_padding_mask)
        signature = _signature(q, k, v, mask)
        name = self._chosen.get(signature)
        if name is None:
            name = self._choose(signature, q, k, v, mask, scale)
        self.last_kernel = name
        with sdpa_kernel(KERNELS[name]):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        if empty is None or not (q.is_cuda or bool(empty.any())):  # no host sync on CUDA
            return out
        return out.masked_fill(empty[:, None, None, None], 0.0)

    def supports(self, q, k, v, key_padding_mask=None) -> str | None:
        mask, _ = _sdpa_mask(key_padding_mask)
        runnable = _runnable(self._candidates(q.device.type), q, k, v, mask)
        if runnable:
            return None
        return (
            f"kernel={self.kernel} cannot run {q.device.type} {q.dtype} input with "
            f"D={q.shape[-1]}, Dv={v.shape[-1]}, mask={'yes' if mask is not None else 'no'}"
        )

    def describe(self) -> dict:
        return {
            "kernel": self.last_kernel,
            "requested": self.kernel,
            "chosen": {_signature_text(s): n for s, n in self._chosen.items()},
            "tune_seconds": round(self.tune_seconds, 4),
        }

    def _candidates(self, device_type: str) -> tuple[str, ...]:
        if self.kernel != "auto":
            return (self.kernel,)
        return AUTO_CANDIDATES.get(device_type, ()) + ("math",)

    def _choose(self, signature, q, k, v, mask, scale) -> str:
        start = time.perf_counter()
        with torch.no_grad():
            runnable = _runnable(self._candidates(q.device.type), q, k, v, mask, scale)
            if not runnable:
                raise RuntimeError(self.supports(q, k, v, None if mask is None else mask[:, 0, 0]))
            fused = [n for n in runnable if n != "math"] or runnable
            best = fused[0] if len(fused) == 1 else _fastest(fused, q, k, v, mask, scale)
        self.tune_seconds += time.perf_counter() - start
        self._chosen[signature] = best
        return best


def _sdpa_mask(key_padding_mask: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """(B, 1, 1, Nk) mask with fully padded items opened up (zeroed after), and those items."""
    if key_padding_mask is None:
        return None, None
    empty = ~key_padding_mask.any(dim=-1)
    return (key_padding_mask | empty[:, None])[:, None, None, :], empty


def _signature(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> tuple:
    def bucket(n: int) -> int:
        return 1 << max(n - 1, 0).bit_length()

    return (
        q.device.type,
        q.dtype,
        q.shape[-1],
        v.shape[-1],
        mask is not None,
        bucket(q.shape[-2]),
        bucket(k.shape[-2]),
    )


def _signature_text(signature: tuple) -> str:
    device, dtype, d, dv, masked, nq, nk = signature
    dtype_name = str(dtype).removeprefix("torch.")
    return f"{device}/{dtype_name}/D{d}/Dv{dv}/mask{int(masked)}/Nq≤{nq}/Nk≤{nk}"


def _runnable(names, q, k, v, mask, scale=None) -> list[str]:
    """The kernels among ``names`` that accept this input (probed on one batch item)."""
    probe = [t[:1] for t in (q, k, v)]
    probe_mask = None if mask is None else mask[:1]
    ok = []
    for name in names:
        try:
            with torch.no_grad(), sdpa_kernel(KERNELS[name]), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch explains each refusal; we only ask
                F.scaled_dot_product_attention(*probe, attn_mask=probe_mask, scale=scale)
            ok.append(name)
        except RuntimeError:
            continue
    return ok


def _fastest(names, q, k, v, mask, scale) -> str:
    def run(name):
        with sdpa_kernel(KERNELS[name]):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)

    calls = {name: functools.partial(run, name) for name in names}
    best, _ = xbench.pick_fastest(calls, q.device)
    return best


def build_flash(options: FlashOptions) -> FlashAttention:
    return FlashAttention(options.kernel)


@xbench.hookimpl
def xbench_register_backends(register):
    register(
        BackendSpec(
            name="flash",
            build=build_flash,
            options=FlashOptions,
            exact=True,
            description="torch scaled_dot_product_attention (cuDNN / FlashAttention-2 / "
            "memory-efficient on CUDA, fused flash on CPU).",
        )
    )

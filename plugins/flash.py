"""``flash``: PyTorch's fused ``scaled_dot_product_attention`` with an explicit kernel choice.

``kernel=auto`` tries, per input signature, the fused kernels that accept the input
(cuDNN, FlashAttention-2, memory-efficient on CUDA; the fused flash kernel on CPU), times
them when more than one runs, and keeps the fastest. A forced kernel that cannot run an
input is reported by ``supports()``; ``describe()`` names the kernel that really ran, with
and without a padding mask, and the kernels that refused each signature (on CUDA the
FlashAttention-2 kernel refuses any ``attn_mask``, so a masked call falls back).

``prepare`` builds the SDPA mask once per source and drops it when every key is real, so
a batch without padding reaches the kernels that refuse masks. ``layout=packed`` keeps
only the real keys, packed by length into a jagged nested tensor (no padding is read or
stored): SDPA on nested tensors runs the fused varlen kernels on CUDA; on CPU (torch
2.13) only the math kernel accepts nested inputs, and it copies them on every call.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import warnings
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

import xbench
from xbench.api.backend import AttentionBackend, BackendSpec, PreparedMemory, QueryPositions
from xbench.api.options import option

KERNELS = {
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}
AUTO_CANDIDATES = {"cuda": ("cudnn", "flash", "efficient"), "cpu": ("flash",)}
LAYOUTS = ("padded", "packed")
# Loggers torch's nested-tensor path writes to on its first use and on every refusal.
NESTED_LOGGERS = ("torch.nested._internal.sdpa", "torch.fx._symbolic_trace")


@dataclass
class FlashOptions:
    kernel: str = option(
        "auto",
        help="SDPA kernel: auto picks the fastest fused kernel that accepts the input",
        choices=("auto", *KERNELS),
    )
    layout: str = option(
        "padded",
        help="keys as padded (B, H, Nk, D) with a mask, or packed by real length (nested)",
        choices=LAYOUTS,
    )


@dataclass(frozen=True)
class FlashMemory(PreparedMemory):
    """The SDPA inputs of one source: ``sdpa_mask`` (B, 1, 1, Nk) or None when every key is
    real, ``empty`` (B,) the items without a real key (None when there is none) and, for
    ``layout=packed`` with padding, the real keys and values as jagged nested tensors."""

    layout: str = "padded"
    sdpa_mask: Tensor | None = None
    empty: Tensor | None = None
    packed_k: Tensor | None = None
    packed_v: Tensor | None = None

    def select(self, index: Tensor) -> FlashMemory:
        """Batch items ``index``: the padded fields are sliced and the rest rebuilt."""
        k, v = self.k.index_select(0, index), self.v.index_select(0, index)
        mask = (
            None if self.key_padding_mask is None else self.key_padding_mask.index_select(0, index)
        )
        return flash_memory(k, v, mask, self.scale, self.layout)


def flash_memory(
    k: Tensor, v: Tensor, key_padding_mask: Tensor | None, scale: float | None, layout: str
) -> FlashMemory:
    """The prepared memory of ``k, v`` and their mask (one host sync when there is a mask)."""
    base = FlashMemory(k, v, key_padding_mask, scale, layout=layout)
    if key_padding_mask is None:
        return base
    lengths = key_padding_mask.sum(dim=-1)
    shortest, longest = torch.stack([lengths.min(), lengths.max()]).tolist()
    if shortest == key_padding_mask.shape[-1]:  # every key is real: no mask at all
        return base
    empty = ~key_padding_mask.any(dim=-1) if shortest == 0 else None
    if layout == "packed":
        packed = [pack(x, key_padding_mask, lengths, shortest, longest) for x in (k, v)]
        return replace(base, empty=empty, packed_k=packed[0], packed_v=packed[1])
    opened = key_padding_mask if empty is None else key_padding_mask | empty[:, None]
    return replace(base, sdpa_mask=opened[:, None, None, :], empty=empty)


def pack(x: Tensor, key_padding_mask: Tensor, lengths: Tensor, shortest: int, longest: int):
    """(B, H, Nk, D) → jagged (B, H, j, D) of the real keys only (differentiable in ``x``)."""
    offsets = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])
    with quiet_nested():
        packed = torch.nested.nested_tensor_from_jagged(
            x.transpose(1, 2)[key_padding_mask],
            offsets,
            min_seqlen=shortest,
            max_seqlen=longest,
        )
    return packed.transpose(1, 2)


def pack_queries(q: Tensor) -> Tensor:
    """(B, H, Nq, D) → jagged (B, H, j, D) with Nq rows per item (no host sync)."""
    batch, heads, nq, dim = q.shape
    values = q.transpose(1, 2).reshape(batch * nq, heads, dim)
    offsets = torch.arange(batch + 1, device=q.device) * nq
    with quiet_nested():
        packed = torch.nested.nested_tensor_from_jagged(
            values, offsets, min_seqlen=nq, max_seqlen=nq
        )
    return packed.transpose(1, 2)


@contextlib.contextmanager
def quiet_nested():
    """Silence torch's notes on nested tensors ("prototype stage", "kernel not used
    because", tracing notices): an xbench user can do nothing about them."""
    loggers = [logging.getLogger(name) for name in NESTED_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def unpack_queries(out: Tensor, batch: int, nq: int) -> Tensor:
    """The inverse of :func:`pack_queries`: jagged (B, H, j, Dv) → (B, H, Nq, Dv)."""
    values = out.transpose(1, 2).values()
    return values.view(batch, nq, *values.shape[1:]).transpose(1, 2)


class FlashAttention(AttentionBackend):
    """Fused SDPA; padded keys become a boolean mask broadcast over heads and queries, or
    are left out altogether (``layout=packed``)."""

    def __init__(self, kernel: str = "auto", layout: str = "padded") -> None:
        super().__init__()
        self.kernel = kernel
        self.layout = layout
        self._chosen: dict[tuple, str] = {}
        self._refused: dict[tuple, list[str]] = {}
        self._last_by_mask: dict[bool, str] = {}
        self.last_kernel: str | None = None
        self.last_masked: bool | None = None
        self.last_packed: bool | None = None
        self.tune_seconds = 0.0

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        scale: float | None = None,
    ) -> Tensor:
        return self.attend(q, self.prepare(k, v, key_padding_mask, scale))

    def prepare(self, k, v, key_padding_mask=None, scale=None) -> FlashMemory:
        return flash_memory(k, v, key_padding_mask, scale, self.layout)

    def attend(
        self, q: Tensor, memory: PreparedMemory, positions: QueryPositions | None = None
    ) -> Tensor:
        if not isinstance(memory, FlashMemory):  # a default memory: prepare it here
            memory = self.prepare(memory.k, memory.v, memory.key_padding_mask, memory.scale)
        inputs, masked = self._sdpa_inputs(q, memory)
        signature = _signature(q, memory.k, memory.v, masked, inputs[1].is_nested)
        name = self._chosen.get(signature)
        if name is None:
            name = self._choose(signature, q, memory, inputs)
        self.last_kernel, self.last_masked = name, masked
        self.last_packed = inputs[1].is_nested
        self._last_by_mask[masked] = name
        out = _sdpa(name, *inputs, memory.scale)
        if inputs[0].is_nested:
            out = unpack_queries(out, q.shape[0], q.shape[2])
        if memory.empty is None:
            return out
        return out.masked_fill(memory.empty[:, None, None, None], 0.0)

    def supports(self, q, k, v, key_padding_mask=None) -> str | None:
        try:
            memory = self.prepare(k, v, key_padding_mask)
            inputs, masked = self._sdpa_inputs(q, memory)
            runnable = _runnable(self._candidates(q.device.type), inputs, None)
        except Exception as error:  # supports() never raises
            return f"flash cannot prepare this input: {type(error).__name__}: {error}"
        if runnable:
            return None
        return (
            f"kernel={self.kernel} cannot run {q.device.type} {q.dtype} input with "
            f"D={q.shape[-1]}, Dv={v.shape[-1]}, mask={'yes' if masked else 'no'}, "
            f"layout={'packed' if inputs[1].is_nested else 'padded'}"
        )

    def describe(self) -> dict:
        return {
            "kernel": self.last_kernel,
            "requested": self.kernel,
            "layout": self.layout,
            "implementation": None if self.last_packed is None else _layout_name(self.last_packed),
            "masked": self.last_masked,
            "kernel_masked": self._last_by_mask.get(True),
            "kernel_unmasked": self._last_by_mask.get(False),
            "chosen": {_signature_text(s): n for s, n in self._chosen.items()},
            "refused": {_signature_text(s): n for s, n in self._refused.items() if n},
            "tune_seconds": round(self.tune_seconds, 4),
        }

    def _sdpa_inputs(self, q: Tensor, memory: FlashMemory) -> tuple[tuple, bool]:
        """(q, k, v, attn_mask) as SDPA gets them, and whether padding is hidden by a mask
        (padded) or left out (packed)."""
        if memory.packed_k is not None:
            return (pack_queries(q), memory.packed_k, memory.packed_v, None), True
        return (q, memory.k, memory.v, memory.sdpa_mask), memory.sdpa_mask is not None

    def _candidates(self, device_type: str) -> tuple[str, ...]:
        if self.kernel != "auto":
            return (self.kernel,)
        return AUTO_CANDIDATES.get(device_type, ()) + ("math",)

    def _choose(self, signature, q, memory, inputs) -> str:
        start = time.perf_counter()
        with torch.no_grad():
            candidates = self._candidates(q.device.type)
            runnable = _runnable(candidates, inputs, memory.scale)
            if not runnable:
                raise RuntimeError(self.supports(q, memory.k, memory.v, memory.key_padding_mask))
            fused = [n for n in runnable if n != "math"] or runnable
            best = fused[0] if len(fused) == 1 else _fastest(fused, inputs, memory.scale, q.device)
        self.tune_seconds += time.perf_counter() - start
        self._chosen[signature] = best
        self._refused[signature] = [n for n in candidates if n not in runnable]
        return best


def _sdpa(name: str, q, k, v, mask, scale) -> Tensor:
    quiet = quiet_nested() if k.is_nested else contextlib.nullcontext()
    with sdpa_kernel(KERNELS[name]), quiet:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def _layout_name(packed: bool) -> str:
    return "packed (nested jagged)" if packed else "padded"


def _signature(q: Tensor, k: Tensor, v: Tensor, masked: bool, packed: bool) -> tuple:
    def bucket(n: int) -> int:
        return 1 << max(n - 1, 0).bit_length()

    return (
        q.device.type,
        q.dtype,
        q.shape[-1],
        v.shape[-1],
        masked,
        packed,
        bucket(q.shape[-2]),
        bucket(k.shape[-2]),
    )


def _signature_text(signature: tuple) -> str:
    device, dtype, d, dv, masked, packed, nq, nk = signature
    dtype_name = str(dtype).removeprefix("torch.")
    layout = "/packed" if packed else ""
    return f"{device}/{dtype_name}/D{d}/Dv{dv}/mask{int(masked)}{layout}/Nq≤{nq}/Nk≤{nk}"


def _runnable(names, inputs: tuple, scale) -> list[str]:
    """The kernels among ``names`` that accept these SDPA inputs: probed on one batch item
    when padded; on the whole (packed) input otherwise, as nested tensors cannot be sliced."""
    q, k, v, mask = inputs
    probe = inputs if k.is_nested else (q[:1], k[:1], v[:1], None if mask is None else mask[:1])
    ok = []
    for name in names:
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch explains each refusal; we only ask
                _sdpa(name, *probe, scale)
            ok.append(name)
        except RuntimeError:
            continue
    return ok


def _fastest(names, inputs: tuple, scale, device: torch.device) -> str:
    calls = {name: functools.partial(_sdpa, name, *inputs, scale) for name in names}
    best, _ = xbench.pick_fastest(calls, device)
    return best


def build_flash(options: FlashOptions) -> FlashAttention:
    return FlashAttention(options.kernel, options.layout)


@xbench.hookimpl
def xbench_register_backends(register):
    register(
        BackendSpec(
            name="flash",
            build=build_flash,
            options=FlashOptions,
            exact=True,
            description="torch scaled_dot_product_attention (cuDNN / FlashAttention-2 / "
            "memory-efficient on CUDA, fused flash on CPU); layout=packed skips padded keys.",
        )
    )

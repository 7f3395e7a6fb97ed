"""The measurement primitive: one backend at one :class:`~xbench.measure.types.AttentionShape`,
as the runner (after training, at the task's shapes), ``xbench bench`` and ``benchmarks/``
measure it.

- the first call is timed on its own (``Latency.cold_ms``): kernel choice, autotuning and
  compilation happen there and never enter the steady-state figures;
- then ``warmup`` untimed calls and ``repeats`` timed ones (:mod:`xbench.measure.clock`),
  each on the next of the rotated input sets (:mod:`xbench.measure.inputs`);
- memory is one more call under :func:`xbench.measure.memory.peak_memory_bytes`.

A call that does not fit is ``oom``, one the backend refuses (its ``supports()`` reason,
or no gradient for ``fwd+bwd``) is ``unsupported``, anything else that raises is
``failed``: a typed :class:`~xbench.measure.types.Measurement`, never an exception.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Callable

import torch

from xbench.api.backend import AttentionBackend
from xbench.measure.clock import time_call
from xbench.measure.flops import attention_flops
from xbench.measure.inputs import AttentionInputs, make_inputs
from xbench.measure.memory import call_memory, is_out_of_memory
from xbench.measure.types import AttentionShape, Measurement


class NotDifferentiable(Exception):
    """fwd+bwd asked of a backend whose output has no gradient."""


def attention_call(backend: AttentionBackend, inputs: AttentionInputs) -> Callable[[], object]:
    """One call on the next input set: forward under no_grad, or (``fwd+bwd``) forward and
    the gradients of q, k, v for the stored output gradient."""

    def forward():
        q, k, v = inputs.next()
        with torch.no_grad():
            return backend(q, k, v, key_padding_mask=inputs.mask)

    def forward_backward():
        q, k, v = inputs.next()
        out = backend(q, k, v, key_padding_mask=inputs.mask)
        if not out.requires_grad:
            raise NotDifferentiable("the output does not depend differentiably on q, k, v")
        return torch.autograd.grad(out, (q, k, v), inputs.grad_out, allow_unused=True)

    return forward_backward if inputs.shape.passes == "fwd+bwd" else forward


def measure_cross_attention(
    backend: AttentionBackend,
    shape: AttentionShape,
    *,
    warmup: int,
    repeats: int,
    input_sets: int = 1,
    rotate_budget_bytes: float | None = None,
    seed: int = 0,
) -> Measurement:
    """Latency (cold, then median and IQR), memory and FLOPs of ``backend`` at ``shape``,
    or the typed reason it could not be measured."""
    device = torch.device(shape.device)
    try:
        inputs = make_inputs(shape, input_sets, seed, rotate_budget_bytes)
        q, k, v = inputs.sets[0]
        reason = backend.supports(q, k, v, inputs.mask)
        if reason:
            return Measurement(shape, status="unsupported", reason=reason)
        call = attention_call(backend, inputs)
        cold = time_call(call, device, warmup=0, repeats=1).median_ms
        latency = dataclasses.replace(time_call(call, device, warmup, repeats), cold_ms=cold)
        memory = call_memory(call, device)
        describe = backend.describe()
    except NotDifferentiable as error:
        return Measurement(shape, status="unsupported", reason=str(error))
    except Exception as error:  # a measurement that fails is a record, never a lost run
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if is_out_of_memory(error):
            return Measurement(shape, status="oom", reason=first_line(error))
        return Measurement(
            shape,
            status="failed",
            reason=f"{type(error).__name__}: {error}"[:500],
            detail=traceback.format_exc(limit=-3),
        )
    return Measurement(
        shape,
        latency=latency,
        memory=memory,
        flops=attention_flops(shape),
        describe=describe,
        input_sets=len(inputs.sets),
    )


def first_line(error: BaseException) -> str:
    """The first line of an error's message (an OOM's runs on), or its type without one."""
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__

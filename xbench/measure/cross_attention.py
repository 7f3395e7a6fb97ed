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

The backend is moved to the shape's device and measured in eval mode (the runner measures
after Lightning's test, which leaves the model on the CPU); its training mode is restored.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Callable

import torch

from xbench.api.backend import AttentionBackend
from xbench.api.errors import first_line
from xbench.measure.clock import time_call
from xbench.measure.flops import attention_flops
from xbench.measure.inputs import AttentionInputs, make_inputs
from xbench.measure.memory import call_memory, is_out_of_memory
from xbench.measure.types import AttentionShape, Measurement

REASON_CHARS = 300  # a typed reason is one line a table cell can show


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
    was_training = backend.training
    try:
        backend.to(device).eval()  # its parameters where the inputs are; dropout off
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
            reason = first_line(error) or type(error).__name__
            return Measurement(shape, status="oom", reason=reason[:REASON_CHARS])
        return Measurement(
            shape,
            status="failed",
            reason=first_line(f"{type(error).__name__}: {error}")[:REASON_CHARS],
            detail=traceback.format_exc(limit=-3),  # ends with the whole message
        )
    finally:
        backend.train(was_training)
    return Measurement(
        shape,
        latency=latency,
        memory=memory,
        flops=attention_flops(shape),
        describe=describe,
        input_sets=len(inputs.sets),
    )

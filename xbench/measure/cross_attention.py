"""The measurement primitive: one backend at one :class:`~xbench.measure.types.AttentionShape`,
as the runner (after training, at the task's shapes), ``xbench bench`` and ``benchmarks/``
measure it.

- the first call is timed on its own (``Latency.cold_ms``): kernel choice, autotuning and
  compilation happen there and never enter the steady-state figures;
- then ``warmup`` untimed calls and ``repeats`` timed ones (:mod:`xbench.measure.clock`),
  each on the next of the rotated input sets (:mod:`xbench.measure.inputs`);
- memory is one more call under :func:`xbench.measure.memory.peak_memory_bytes`.

A ``decode`` shape times ``attend`` of its Nq query rows (1: one decode step) against the
memory ``prepare`` built from each input set beforehand; ``prepare`` is timed apart
(``Measurement.prepare``), as a decoder pays it once per source and layer. A real batch's
padding mask may replace the drawn one (``mask=``): ragged as the task produces it.

A call that does not fit is ``oom``, one the backend refuses (its ``supports()`` reason,
or no gradient for ``fwd+bwd``) is ``unsupported``, anything else that raises is
``failed``: a typed :class:`~xbench.measure.types.Measurement`, never an exception.

The backend is moved to the shape's device and measured in eval mode (the runner measures
after Lightning's test, which leaves the model on the CPU); its training mode is restored.
"""

from __future__ import annotations

import dataclasses
import itertools
import traceback
from collections.abc import Callable

import torch

from xbench.api.backend import AttentionBackend, PreparedMemory
from xbench.api.errors import first_line
from xbench.measure.clock import time_call
from xbench.measure.flops import attention_flops
from xbench.measure.inputs import AttentionInputs, kv_bytes, make_inputs, padded_share
from xbench.measure.memory import call_memory, is_out_of_memory
from xbench.measure.types import AttentionShape, Latency, Measurement

REASON_CHARS = 300  # a typed reason is one line a table cell can show


class NotDifferentiable(Exception):
    """fwd+bwd asked of a backend whose output has no gradient."""


def attention_call(backend: AttentionBackend, inputs: AttentionInputs) -> Callable[[], object]:
    """One call on the next input set: forward under no_grad, ``attend`` against the set's
    prepared memory (``decode``), or (``fwd+bwd``) forward and the gradients of q, k, v for
    the stored output gradient."""
    if inputs.shape.passes == "decode":
        return decode_call(backend, inputs)

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


def prepare_memories(backend: AttentionBackend, inputs: AttentionInputs) -> list[PreparedMemory]:
    """Each input set's memory, as the decoder prepares it once per source."""
    with torch.no_grad():
        return [backend.prepare(k, v, inputs.mask) for _, k, v in inputs.sets]


def decode_call(
    backend: AttentionBackend, inputs: AttentionInputs, memories: list[PreparedMemory] | None = None
) -> Callable[[], object]:
    """``attend`` of the next set's queries against that set's prepared memory."""
    memories = memories or prepare_memories(backend, inputs)
    queries = [q for q, _, _ in inputs.sets]
    pairs = itertools.cycle(zip(queries, memories, strict=True))

    def step():
        q, memory = next(pairs)
        with torch.no_grad():
            return backend.attend(q, memory)

    return step


def measure_cross_attention(
    backend: AttentionBackend,
    shape: AttentionShape,
    *,
    warmup: int,
    repeats: int,
    input_sets: int = 1,
    rotate_budget_bytes: float | None = None,
    seed: int = 0,
    mask: torch.Tensor | None = None,
) -> Measurement:
    """Latency (cold, then median and IQR), memory and FLOPs of ``backend`` at ``shape``,
    or the typed reason it could not be measured. ``mask`` (B, Nk) replaces the drawn
    padding (its padded share is recorded in the shape)."""
    if mask is not None:
        shape = dataclasses.replace(shape, padded_fraction=padded_share(mask))
    device = torch.device(shape.device)
    was_training = backend.training
    prepare = None
    try:
        backend.to(device).eval()  # its parameters where the inputs are; dropout off
        inputs = make_inputs(shape, input_sets, seed, rotate_budget_bytes, mask=mask)
        q, k, v = inputs.sets[0]
        reason = backend.supports(q, k, v, inputs.mask)
        if reason:
            return Measurement(shape, status="unsupported", reason=reason)
        if shape.passes == "decode":
            prepare = time_prepare(backend, inputs, device, warmup, repeats)
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
        prepare=prepare,
        bytes_moved=kv_bytes(shape),
    )


def time_prepare(
    backend: AttentionBackend,
    inputs: AttentionInputs,
    device: torch.device,
    warmup: int,
    repeats: int,
) -> Latency:
    """Milliseconds of ``prepare`` on the first input set (cold call apart, as for steps)."""
    _, k, v = inputs.sets[0]

    def prepare():
        with torch.no_grad():
            return backend.prepare(k, v, inputs.mask)

    cold = time_call(prepare, device, warmup=0, repeats=1).median_ms
    return dataclasses.replace(time_call(prepare, device, warmup, repeats), cold_ms=cold)

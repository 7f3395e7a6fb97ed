"""The measurement primitive on CPU: an ok measurement's figures, and typed measurements
(never exceptions) for backends that refuse, run out of memory, fail or have no gradient."""

from __future__ import annotations

import pytest
import torch
from helpers.backends import Broken, Constant, OutOfDeviceMemory, Refusing

from xbench.measure.cross_attention import measure_cross_attention
from xbench.measure.flops import attention_flops
from xbench.measure.types import FLOPS_CONVENTION, AttentionShape, Measurement
from xbench_plugins.flash import FlashAttention
from xbench_plugins.naive import NaiveAttention

SHAPE = AttentionShape(batch=2, heads=2, nq=8, nk=16, head_dim=16, dtype="float32", device="cpu")
TIMING = {"warmup": 1, "repeats": 3}


def test_measure_naive_is_ok_with_cold_and_steady_latency_memory_and_flops():
    measurement = measure_cross_attention(NaiveAttention(), SHAPE, **TIMING)

    assert measurement.status == "ok" and measurement.reason is None
    assert measurement.latency.median_ms > 0 and measurement.latency.count == 3
    assert measurement.latency.cold_ms > 0
    assert measurement.memory.bytes >= 2 * 2 * 8 * 16 * 4  # its (B, H, Nq, Nk) scores
    assert measurement.memory.method == "live_tensor_storages"
    assert measurement.flops == attention_flops(SHAPE)
    assert measurement.flops.convention == FLOPS_CONVENTION
    assert measurement.tflops > 0
    assert measurement.describe == {"kernel": "matmul-softmax-matmul"}
    assert measurement.input_sets == 1
    assert Measurement.from_dict(measurement.to_dict()) == measurement


class Recording(NaiveAttention):
    """Naive attention that remembers the masks and input sets it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.real_keys: list[list[int]] = []
        self.queries: set[int] = set()

    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        self.real_keys.append(key_padding_mask.sum(dim=1).tolist())
        self.queries.add(q.data_ptr())
        return super().forward(q, k, v, key_padding_mask, scale)


def test_calls_rotate_input_sets_and_use_the_shapes_ragged_mask():
    backend = Recording()
    ragged = AttentionShape(4, 2, 8, 100, 16, "float32", "cpu", padded_fraction=0.25)

    measurement = measure_cross_attention(backend, ragged, **TIMING, input_sets=3)

    assert measurement.status == "ok" and measurement.input_sets == 3
    assert len(backend.queries) == 3
    assert backend.real_keys[0] == [100, 83, 67, 50]  # 25 % padded on average, ragged
    assert len(backend.real_keys) == 1 + 1 + 3 + 1  # cold, warm-up, timed, memory


@pytest.mark.parametrize(
    ("backend", "passes", "status", "reason"),
    [
        (Refusing(), "fwd", "unsupported", "needs head_dim 128"),
        (FlashAttention(kernel="efficient"), "fwd", "unsupported", "kernel=efficient"),
        (OutOfDeviceMemory(), "fwd", "oom", "CUDA out of memory. Tried to allocate 9.00 GiB"),
        (Broken(), "fwd", "failed", "ValueError: bad kernel"),
        (Constant(), "fwd+bwd", "unsupported", "does not depend differentiably"),
    ],
)
def test_measurements_that_cannot_be_taken_are_typed(backend, passes, status, reason):
    shape = AttentionShape(2, 2, 8, 16, 16, "float32", "cpu", passes=passes)

    measurement = measure_cross_attention(backend, shape, **TIMING)

    assert measurement.status == status
    assert reason in measurement.reason and "\n" not in measurement.reason
    assert measurement.latency is None and measurement.memory is None
    assert measurement.shape == shape
    assert (measurement.detail is not None) == (status == "failed")
    if status == "failed":
        assert "bad kernel" in measurement.detail and "forward" in measurement.detail


def test_a_multi_line_failure_keeps_its_first_line_as_reason_and_all_of_it_in_detail():
    measurement = measure_cross_attention(Broken("bad kernel\nat block 3\nof 8"), SHAPE, **TIMING)

    assert measurement.status == "failed"
    assert measurement.reason == "ValueError: bad kernel"
    assert "ValueError: bad kernel\nat block 3\nof 8" in measurement.detail


class ModeRecording(NaiveAttention):
    """Naive attention (with dropout on its weights when training) that remembers whether
    it was in training mode at each call, and may then fail."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.dropout = torch.nn.Dropout(0.5)
        self.fail = fail
        self.modes: list[bool] = []

    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        self.modes.append(self.training)
        if self.fail:
            raise ValueError("bad kernel")
        return self.dropout(super().forward(q, k, v, key_padding_mask, scale))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("fail", [False, True])
def test_the_backend_is_measured_in_eval_mode_and_left_in_the_mode_it_was_in(training, fail):
    backend = ModeRecording(fail=fail)
    backend.train(training)

    measurement = measure_cross_attention(backend, SHAPE, **TIMING)

    assert measurement.status == ("failed" if fail else "ok")
    assert backend.modes and not any(backend.modes)  # every call in eval mode
    assert backend.training is training
    assert backend.dropout.training is training  # its submodules too

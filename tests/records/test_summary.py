"""A record's headline figures (wandb's run summary): flat, named, unmeasured ones left out."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.records import not_measured
from helpers.records import record as make_record

from xbench.measure.types import Flops
from xbench.records.result import RunResult
from xbench.records.summary import headline

V1_QA = Path(__file__).parent / "fixtures" / "result_v1_qa.json"


def test_headline_of_a_finished_run():
    assert headline(RunResult.load(V1_QA)) == pytest.approx(
        {
            "status": "ok",
            "primary_metric": "f1",
            "primary": 0.8913333415985107,
            "test/exact_match": 0.8790000081062317,
            "test/f1": 0.8913333415985107,
            "train_step_ms": 52.024490499988474,
            "inference_tokens_per_second": 6524.68420452437,
            "cross_attention/prefill/status": "ok",
            "cross_attention/prefill/latency_ms": 0.06114900000397938,
            "cross_attention/prefill/memory_bytes": 23448,
            "cross_attention/prefill/padded_fraction": 0.0,
            "cross_attention/prefill/tflops": 0.019425338107290375,
            "peak_memory_bytes": 679260160,
        }
    )


def test_headline_of_a_failed_run_has_only_its_status():
    record = make_record(backend="naive", status="failed", error="boom")
    assert headline(record) == {"status": "failed"}


def test_headline_of_a_finished_run_whose_cross_attention_was_not_measured():
    summary = headline(not_measured(make_record(backend="naive"), reason="out of memory"))

    assert summary["status"] == "ok" and summary["primary"] == 0.5
    for phase in ("train", "prefill", "decode"):
        assert summary[f"cross_attention/{phase}/status"] == "oom"
        assert summary[f"cross_attention/{phase}/reason"] == "out of memory"
        assert f"cross_attention/{phase}/latency_ms" not in summary
        assert f"cross_attention/{phase}/memory_bytes" not in summary
    assert not any(key.endswith(("tflops", "bytes_per_second")) for key in summary)


def test_headline_gives_each_phase_its_own_roof_and_the_shares():
    record = make_record(backend="naive", latency=2.0, decode=0.05, memory=4000, step_ms=100.0)
    decode = record.efficiency.cross_attention.decode
    decode.flops = Flops(count=10**6)
    decode.bytes_moved = 10**6

    summary = headline(record)

    assert summary["cross_attention/train/latency_ms"] == 2.0
    assert summary["cross_attention/train/memory_bytes"] == 4000
    assert summary["cross_attention/train/padded_fraction"] == 0.2
    assert summary["cross_attention/decode/latency_ms"] == 0.05
    assert summary["cross_attention/decode/bytes_per_second"] == pytest.approx(10**6 / 0.05e-3)
    assert "cross_attention/decode/tflops" not in summary, "a decode step is memory-bound"
    assert summary["cross_attention/train_share"] == pytest.approx(2 * 2.0 / 100.0)
    assert summary["cross_attention/decode_share"] == pytest.approx(0.2)
    assert summary["decode_step_ms"] == pytest.approx(0.5)

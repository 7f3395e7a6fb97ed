"""A record's headline figures (wandb's run summary): flat, named, unmeasured ones left out."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.records import not_measured
from helpers.records import record as make_record

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
            "cross_attention/status": "ok",
            "cross_attention/latency_ms": 0.06114900000397938,
            "cross_attention/memory_bytes": 23448,
            "peak_memory_bytes": 679260160,
        }
    )


def test_headline_of_a_failed_run_has_only_its_status():
    record = make_record(backend="naive", status="failed", error="boom")
    assert headline(record) == {"status": "failed"}


def test_headline_of_a_finished_run_whose_cross_attention_was_not_measured():
    summary = headline(not_measured(make_record(backend="naive"), reason="out of memory"))

    assert summary["status"] == "ok" and summary["primary"] == 0.5
    assert summary["cross_attention/status"] == "oom"
    assert summary["cross_attention/reason"] == "out of memory"
    assert "cross_attention/latency_ms" not in summary
    assert "cross_attention/memory_bytes" not in summary

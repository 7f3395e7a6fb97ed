"""The race flash and sparse share: each candidate timed, the fastest kept."""

from __future__ import annotations

import time

import pytest
import torch

import xbench
from xbench.measure.candidates import pick_fastest

CPU = torch.device("cpu")


def sleeper(seconds: float, calls: list):
    def call():
        calls.append(torch.is_grad_enabled())
        time.sleep(seconds)

    return call


def test_the_fastest_candidate_wins_and_every_median_is_reported():
    slow_calls, fast_calls = [], []
    candidates = {"slow": sleeper(0.02, slow_calls), "fast": sleeper(0.002, fast_calls)}

    winner, medians = pick_fastest(candidates, CPU, warmup=1, repeats=3)

    assert winner == "fast"
    assert set(medians) == {"slow", "fast"}
    assert medians["slow"] > medians["fast"] >= 2.0
    assert len(slow_calls) == len(fast_calls) == 4
    assert not any(slow_calls + fast_calls)  # raced without autograd


def test_public_name_and_no_candidates():
    assert xbench.pick_fastest is pick_fastest
    with pytest.raises(ValueError, match="at least one candidate"):
        pick_fastest({}, CPU)

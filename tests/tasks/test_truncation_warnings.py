"""The truncation warning every task appends when a length cap cuts much of its examples."""

from __future__ import annotations

from xbench.taskkit.truncation import truncation_warning, truncation_warnings


def test_a_cap_that_cuts_more_than_a_tenth_of_some_examples_is_counted():
    # 10 and 11 tokens under a cap of 10: the first is whole, the second loses 1/11 < 10%.
    assert truncation_warning("task.max_source_tokens", 10, [5, 10, 11], "test sources") is None
    line = truncation_warning("task.max_source_tokens", 10, [5, 11, 20, 40], "test sources")
    assert line == ("task.max_source_tokens=10 cut more than 10% off 2 of 4 test sources (50%)")


def test_only_the_splits_that_are_cut_get_a_line():
    lines = truncation_warnings(
        "task.max_target_tokens", 4, {"train": [3, 4], "test": [9, 2, 2]}, "targets"
    )
    assert lines == ["task.max_target_tokens=4 cut more than 10% off 1 of 3 test targets (33%)"]

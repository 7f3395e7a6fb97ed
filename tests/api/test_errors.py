"""The one "first line of an error" every view and typed reason shows."""

from __future__ import annotations

import pytest

from xbench.api.errors import first_line


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "CUDA out of memory. Tried 9 GiB\nIf reserved memory is large...",
            "CUDA out of memory. Tried 9 GiB",
        ),
        ("\n\n  Error in call to target 'x':  \nTraceback", "Error in call to target 'x':"),
        (ValueError("bad kernel\nat block 3"), "bad kernel"),
        ("one line", "one line"),
        ("", ""),
        ("  \n \n", ""),
        (None, ""),
        (ValueError(), ""),
    ],
)
def test_first_line_is_the_first_non_blank_line_or_empty(text, line):
    assert first_line(text) == line

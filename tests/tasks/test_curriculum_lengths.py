"""The training lengths a length curriculum draws (xbench.taskkit.lengths)."""

from __future__ import annotations

from collections import Counter

import pytest

from xbench.taskkit.lengths import drawn_lengths


def test_fixed_gives_the_most_and_the_draws_stay_in_range_and_seeded():
    assert drawn_lengths("fixed", 7, 3, "s") == [7, 7, 7]
    for law in ("uniform", "loguniform"):
        lengths = drawn_lengths(law, 100, 2000, "s")
        assert min(lengths) == 1 and max(lengths) <= 100 and max(lengths) >= 90
        assert drawn_lengths(law, 100, 2000, "s") == lengths
        assert drawn_lengths(law, 100, 2000, "t") != lengths


def test_loguniform_draws_each_doubling_about_equally_often():
    lengths = drawn_lengths("loguniform", 63, 6000, "s")
    octaves = Counter(length.bit_length() for length in lengths)  # [1], [2, 3], [4, 7], ...
    assert set(octaves) == {1, 2, 3, 4, 5, 6}
    assert max(octaves.values()) < 1.3 * min(octaves.values())
    uniform = Counter(n.bit_length() for n in drawn_lengths("uniform", 63, 6000, "s"))
    assert uniform[6] > 10 * uniform[2]  # uniform: mostly long


def test_an_unknown_law_is_refused():
    with pytest.raises(ValueError, match="loguniform"):
        drawn_lengths("gaussian", 5, 1, "s")

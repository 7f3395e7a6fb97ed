"""Training lengths of a length curriculum: how many units (sentences, utterances) each
training example joins.

A model trained only at the evaluation length finds the alignment slowly (a token's source
is one of thousands of keys), and one trained only on short examples cannot read long ones
(its attention spreads over keys it never had to tell apart, and it stops where short
examples stop). Drawing each training example's length mixes both.
"""

from __future__ import annotations

import math
import random

__all__ = ["LENGTH_LAWS", "drawn_lengths"]

#: ``fixed``: every example the most; ``uniform``: 1 … most equally often; ``loguniform``:
#: each doubling of length equally often (as many of 1-2 units as of 50-100).
LENGTH_LAWS = ("fixed", "uniform", "loguniform")


def drawn_lengths(law: str, most: int, count: int, seed: str) -> list[int]:
    """``count`` lengths in 1 … ``most`` drawn by ``law`` (one of :data:`LENGTH_LAWS`),
    the same for the same ``seed``."""
    if law not in LENGTH_LAWS:
        raise ValueError(f"unknown length law {law!r}; choose one of {LENGTH_LAWS}")
    if law == "fixed":
        return [most] * count
    rng = random.Random(seed)
    if law == "uniform":
        return [rng.randint(1, most) for _ in range(count)]
    return [min(most, int(math.exp(rng.uniform(0.0, math.log(most + 1))))) for _ in range(count)]

"""Filler text for a haystack: sentences that name no person, organisation, city, date or
number, so none of them can answer a question or compete with a fact.

A long context of filler around a few facts keeps the question as hard to resolve as at
short lengths (the same number of competing facts) while the source grows to thousands of
keys: what changes with length is only how far the answer may sit from anything a local
window or a pooled summary of the source would see.
"""

from __future__ import annotations

import random

ADJECTIVES = ["quiet", "old", "green", "small", "bright", "wet", "narrow", "warm", "heavy", "dark"]
NOUNS = [
    "river",
    "table",
    "window",
    "garden",
    "cloud",
    "stone",
    "letter",
    "road",
    "song",
    "market",
    "bridge",
    "lamp",
    "forest",
    "train",
    "coat",
    "wall",
]
VERBS = ["passed", "crossed", "followed", "covered", "touched", "reached", "faced", "joined"]
FILLER_WORDS = frozenset(ADJECTIVES + NOUNS + VERBS + ["the", "."])


def filler_sentence(rng: random.Random) -> str:
    """``the <adjective> <noun> <verb> the <noun> .``: seven words."""
    return (
        f"the {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.choice(VERBS)} "
        f"the {rng.choice(NOUNS)} ."
    )


def with_filler(rng: random.Random, facts: list[str], words: int) -> list[str]:
    """``facts`` in their order with filler sentences of at least ``words`` words in all
    spread between them, each at a uniformly drawn place; none when ``words`` is 0."""
    sentences = list(facts)
    added = 0
    while added < words:
        filler = filler_sentence(rng)
        sentences.insert(rng.randint(0, len(sentences)), filler)
        added += len(filler.split())
    return sentences

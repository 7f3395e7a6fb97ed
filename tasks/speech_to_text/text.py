"""Transcript normalisation and the character tokenizer of the decoder."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from xbench.taskkit.text import WordTokenizer

_APOSTROPHES = re.compile(r"['’`]")
_NOT_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """Lower-case; apostrophes dropped ("don't" → "dont"); any other character that is
    not a letter or digit becomes a space; whitespace collapsed. Applied to references
    and predictions alike, so WER/CER count words, not casing or punctuation."""
    return " ".join(_NOT_WORD.sub(" ", _APOSTROPHES.sub("", text.lower())).split())


class CharTokenizer(WordTokenizer):
    """One token per character of normalised text (space included); ids 0-3 are the
    specials of :class:`xbench.taskkit.text.WordTokenizer`."""

    def __init__(self, chars: Iterable[str]) -> None:
        super().__init__(sorted(set(chars) - set(self.SPECIALS)))

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharTokenizer:
        return cls({c for text in texts for c in normalise(text)})

    def encode(self, text: str) -> list[int]:
        return [self.index.get(c, self.unk_id) for c in normalise(text)]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.tokens(ids))

"""Transcript normalisation and the character tokenizer of the decoder."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_APOSTROPHES = re.compile(r"['’`]")
_NOT_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """Lower-case; apostrophes dropped ("don't" → "dont"); any other character that is
    not a letter or digit becomes a space; whitespace collapsed. Applied to references
    and predictions alike, so WER/CER count words, not casing or punctuation."""
    return " ".join(_NOT_WORD.sub(" ", _APOSTROPHES.sub("", text.lower())).split())


class CharTokenizer:
    """One token per character of normalised text (space included).

    Ids 0-3 are ``<pad> <bos> <eos> <unk>`` as in :class:`xbench.text.WordTokenizer`.
    """

    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
    pad_id, bos_id, eos_id, unk_id = range(4)

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars = list(self.SPECIALS) + sorted(set(chars) - set(self.SPECIALS))
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharTokenizer:
        return cls({c for text in texts for c in normalise(text)})

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(c, self.unk_id) for c in normalise(text)]

    def decode(self, ids: Sequence[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if len(self.SPECIALS) <= i < len(self.chars):
                out.append(self.chars[i])
        return "".join(out)

"""Word-level text handling shared by text tasks: a tokenizer and the source frontend."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

_WORD = re.compile(r"\w+|[^\w\s]")
_NO_SPACE_BEFORE = re.compile(r" ([.,;:!?)\]}'%])")
_NO_SPACE_AFTER = re.compile(r"([(\[{$]) ")


def split_words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks."""
    return _WORD.findall(text.lower())


class WordTokenizer:
    """A closed word vocabulary; unknown words map to ``<unk>``.

    Ids 0-3 are ``<pad> <bos> <eos> <unk>``. Source and target of a text task can share it
    (and the embedding), which lets a small model copy words from source to target.
    """

    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
    pad_id, bos_id, eos_id, unk_id = range(4)

    def __init__(self, words: Sequence[str]) -> None:
        self.words = list(self.SPECIALS) + [w for w in words if w not in self.SPECIALS]
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], min_count: int = 1, max_size: int | None = None
    ) -> WordTokenizer:
        counts = Counter(w for text in texts for w in split_words(text))
        ranked = sorted(
            (w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls(ranked[:max_size])

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, self.unk_id) for w in split_words(text)]

    def decode(self, ids: Sequence[int]) -> str:
        text = _NO_SPACE_BEFORE.sub(r"\1", " ".join(self.tokens(ids)))
        return _NO_SPACE_AFTER.sub(r"\1", text)

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """The tokens of ``ids`` up to the first EOS, special tokens dropped."""
        tokens = []
        for i in map(int, ids):
            if i == self.eos_id:
                break
            if len(self.SPECIALS) <= i < len(self.words):
                tokens.append(self.words[i])
        return tokens


def sinusoidal_positions(length: int, dim: int, device=None) -> Tensor:
    """(length, dim) fixed sinusoidal position codes: no maximum length to outgrow."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(position * freq)
    codes[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return codes


class TokenFrontend(nn.Module):
    """Token embedding (optionally the decoder's own) plus sinusoidal positions.

    Input: LongTensor (B, Nk) padded with ``pad_id``. Output: ``(x, key_padding_mask)``.
    """

    def __init__(self, embedding: nn.Embedding, pad_id: int) -> None:
        super().__init__()
        self.embedding = embedding
        self.pad_id = pad_id

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        dim = self.embedding.embedding_dim
        x = self.embedding(ids) * math.sqrt(dim)
        x = x + sinusoidal_positions(ids.shape[1], dim, ids.device).to(x.dtype)
        return x, ids != self.pad_id

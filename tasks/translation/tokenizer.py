"""A sentencepiece subword vocabulary shared by source and target.

One joint vocabulary lets the frontend reuse the decoder's embedding, so names and
numbers can be copied across. It is trained on the training split only and cached under
xbench's cache directory by the data checksum, so a rerun loads it instead of training.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from xbench.taskkit.cache import cache_path, cached_bytes

SUBWORD_CACHE = "translation/subword"


class SubwordTokenizer:
    """Target (and source) tokenizer; ids 0-3 are pad, bos, eos, unk."""

    pad_id, bos_id, eos_id, unk_id = range(4)

    def __init__(self, model_path: Path) -> None:
        self.model_path = model_path
        self.processor = spm.SentencePieceProcessor(model_file=str(model_path))

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.processor.encode(text)

    def encode_all(self, texts: Sequence[str]) -> list[list[int]]:
        return self.processor.encode(list(texts))

    def piece_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]] | None]:
        """Each text's pieces as [start, end) character spans of the text (a piece's
        leading word marker excluded; a bare marker covers the character after it), in
        :meth:`encode_all` order; None for a text that normalisation changed, whose pieces
        no longer spell it."""
        spans: list[list[tuple[int, int]] | None] = []
        for text, pieces in zip(
            texts, self.processor.encode(list(texts), out_type=str), strict=True
        ):
            surface = [piece.replace("\u2581", " ") for piece in pieces]
            if "".join(surface) != " " + text:
                spans.append(None)
                continue
            row, end = [], -1  # offsets in the text, after the dummy leading space
            for piece in surface:
                start, end = end, end + len(piece)
                bare = piece.lstrip(" ")
                start = end - len(bare) if bare else end
                row.append((start, max(end, start + 1)))
            spans.append(row)
        return spans

    def decode(self, ids: Sequence[int]) -> str:
        """Detokenised text up to the first EOS."""
        pieces = []
        for i in map(int, ids):
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                pieces.append(i)
        return self.processor.decode(pieces)


def train_subword_model(sentences: Iterable[str], vocab_size: int, data_key: str) -> Path:
    """Train a unigram sentencepiece model on ``sentences`` (or reuse the cached one).

    ``data_key`` identifies the training data (its checksum); with ``vocab_size`` it names
    the cached model. Training is single-threaded so the same data gives the same model.
    """

    def train() -> bytes:
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            model_type="unigram",
            vocab_size=vocab_size,
            hard_vocab_limit=False,  # a small corpus may not support the full size
            character_coverage=1.0,
            pad_id=0,
            bos_id=1,
            eos_id=2,
            unk_id=3,
            num_threads=1,
            minloglevel=2,
        )
        return model.getvalue()

    params = [data_key, vocab_size]
    cached_bytes(SUBWORD_CACHE, params, ".model", train)
    return cache_path(SUBWORD_CACHE, params, ".model")

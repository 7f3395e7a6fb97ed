"""Translation examples as encoder/decoder tensors, with their subword alignment where the
data has a word alignment."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from xbench.taskkit.data import alignment_matrix, pad
from xbench_tasks.translation.phrases import Links
from xbench_tasks.translation.tokenizer import SubwordTokenizer

Span = tuple[int, int]


def piece_links(
    links: Links, target_pieces: Sequence[Span], source_pieces: Sequence[Span]
) -> list[list[int]]:
    """Per target piece, the source pieces of every source word aligned with a target word
    the piece overlaps (a word's pieces all share its links); character spans throughout."""

    def overlapping(pieces: Sequence[Span], start: int, end: int) -> list[int]:
        return [i for i, (a, b) in enumerate(pieces) if a < end and start < b]

    rows: list[set[int]] = [set() for _ in target_pieces]
    for target_start, target_end, source_start, source_end in links:
        sources = overlapping(source_pieces, source_start, source_end)
        for t in overlapping(target_pieces, target_start, target_end):
            rows[t].update(sources)
    return [sorted(row) for row in rows]


class EncodedPairs(torch.utils.data.Dataset):
    """(source ids, BOS + target ids + EOS, [reference], alignment links) per example,
    encoded once; links (per target piece, its aligned source pieces) come from
    ``links`` (each pair's word alignment, :data:`~phrases.Links`), else None."""

    def __init__(
        self,
        pairs: Sequence[tuple[str, str]],
        tokenizer: SubwordTokenizer,
        max_source_tokens: int,
        max_target_tokens: int,
        links: Sequence[Links] | None = None,
    ) -> None:
        sources = tokenizer.encode_all([s for s, _ in pairs])
        targets = tokenizer.encode_all([t for _, t in pairs])
        # Lengths before the caps, for their warnings.
        self.source_lengths = [len(source) for source in sources]
        self.target_lengths = [len(target) for target in targets]
        aligned: list[list[list[int]] | None] = [None] * len(pairs)
        if links is not None:
            source_spans = tokenizer.piece_spans([s for s, _ in pairs])
            target_spans = tokenizer.piece_spans([t for _, t in pairs])
            aligned = [
                piece_links(link, target, source) if source and target else None
                for link, source, target in zip(links, source_spans, target_spans, strict=True)
            ]
        self.items = [
            (
                source[:max_source_tokens],
                [tokenizer.bos_id, *target[:max_target_tokens], tokenizer.eos_id],
                [reference],
                _truncated(rows, max_source_tokens, max_target_tokens),
            )
            for source, target, (_, reference), rows in zip(
                sources, targets, pairs, aligned, strict=True
            )
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


def _truncated(
    rows: list[list[int]] | None, source_tokens: int, target_tokens: int
) -> list[list[int]] | None:
    """Links cut as the ids are: target rows past ``target_tokens`` and source pieces past
    ``source_tokens`` dropped."""
    if rows is None:
        return None
    return [[p for p in row if p < source_tokens] for row in rows[:target_tokens]]


def collate_pairs(batch: list, pad_id: int) -> dict:
    """Source sentences for the encoder; no decoder prompt; the alignment when known."""
    sources, targets, references, links = zip(*batch, strict=True)
    source, target = pad(sources, pad_id), pad(targets, pad_id)
    out = {"source": source, "target": target, "references": list(references)}
    alignment = alignment_matrix(links, target.shape[1] - 1, source.shape[1])
    if alignment is not None:
        out["alignment"] = alignment
    return out

"""Translation examples as encoder/decoder tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from xbench.taskkit.data import pad
from xbench_tasks.translation.tokenizer import SubwordTokenizer


class EncodedPairs(torch.utils.data.Dataset):
    """(source ids, BOS + target ids + EOS, [reference]) per example, encoded once."""

    def __init__(
        self,
        pairs: Sequence[tuple[str, str]],
        tokenizer: SubwordTokenizer,
        max_source_tokens: int,
        max_target_tokens: int,
    ) -> None:
        sources = tokenizer.encode_all([s for s, _ in pairs])
        targets = tokenizer.encode_all([t for _, t in pairs])
        # Lengths before the caps, for their warnings.
        self.source_lengths = [len(source) for source in sources]
        self.target_lengths = [len(target) for target in targets]
        self.items = [
            (
                source[:max_source_tokens],
                [tokenizer.bos_id, *target[:max_target_tokens], tokenizer.eos_id],
                [reference],
            )
            for source, target, (_, reference) in zip(sources, targets, pairs, strict=True)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


def collate_pairs(batch: list, pad_id: int) -> dict:
    """Source sentences for the encoder; no decoder prompt."""
    sources, targets, references = zip(*batch, strict=True)
    return {
        "source": pad(sources, pad_id),
        "target": pad(targets, pad_id),
        "references": list(references),
    }

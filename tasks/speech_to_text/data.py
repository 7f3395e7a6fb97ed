"""Speech examples as tensors: source = (log-mel frames, length), target = transcript ids."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from xbench.api.task import Tokenizer
from xbench.taskkit.data import pad


class EncodedSpeech(Dataset):
    """(features (T, n_mels) float tensor, target ids with BOS/EOS, transcript) items."""

    def __init__(
        self, examples: Sequence[tuple[np.ndarray, str]], tokenizer: Tokenizer, max_tokens: int
    ) -> None:
        encoded = [tokenizer.encode(text) for _, text in examples]
        self.target_lengths = [len(ids) for ids in encoded]  # before the cap, for its warning
        self.items = [
            (
                torch.from_numpy(np.asarray(features, dtype=np.float32)),
                [tokenizer.bos_id, *ids[:max_tokens], tokenizer.eos_id],
                text,
            )
            for (features, text), ids in zip(examples, encoded, strict=True)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


def collate(batch, pad_id: int) -> dict:
    """Zero-pad frames and PAD-pad targets to the longest in the batch."""
    features, targets, texts = zip(*batch, strict=True)
    lengths = torch.tensor([len(f) for f in features], dtype=torch.long)
    frames = torch.nn.utils.rnn.pad_sequence(list(features), batch_first=True)
    return {
        "source": (frames, lengths),
        "target": pad(targets, pad_id),
        "references": [[t] for t in texts],
    }

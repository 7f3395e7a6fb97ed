"""Speech examples as tensors: source = (log-mel frames, length), target = transcript ids,
and (where the data knows each word's frames) the alignment of each target token."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from xbench.api.task import Tokenizer
from xbench.taskkit.data import alignment_matrix, pad
from xbench_tasks.speech_to_text.frontend import subsampled_lengths
from xbench_tasks.speech_to_text.text import normalise


def encoder_span(start: int, end: int, layers: int, positions: int) -> list[int]:
    """Encoder positions whose centre frame (``2**layers`` × position, after ``layers``
    stride-2 convolutions) lies in feature frames [start, end); the nearest one when none
    does. Clipped to the utterance's ``positions``."""
    step = 2**layers
    first, last = -(-start // step), -(-end // step)
    span = range(first, last) if last > first else range(start // step, start // step + 1)
    return [p for p in span if p < positions]


def word_links(
    text: str, words: np.ndarray, tokenizer: Tokenizer, layers: int, positions: int
) -> list[list[int]] | None:
    """Per target token (BOS excluded, EOS unknown), the encoder positions of the spoken
    word it belongs to; separators between words (a character tokenizer's spaces) are
    unknown. None when the word frames (``words`` (W, 2) [start, end)) are not known."""
    spoken = normalise(text).split()
    if not len(words) or len(words) != len(spoken):
        return None
    pieces = [len(tokenizer.encode(w)) for w in spoken]
    separators = len(tokenizer.encode(" ".join(spoken))) - sum(pieces)
    gap = separators // max(1, len(spoken) - 1)
    links: list[list[int]] = []
    for index, (count, (start, end)) in enumerate(zip(pieces, words, strict=True)):
        links += [encoder_span(int(start), int(end), layers, positions)] * count
        if index < len(spoken) - 1:
            links += [[]] * gap
    return links


class EncodedSpeech(Dataset):
    """(features (T, n_mels) float tensor, target ids with BOS/EOS, transcript, alignment
    links) items; examples are (features, transcript) or (features, transcript, word
    frames) as the embedded corpus gives them (``layers``: the frontend's subsampling)."""

    def __init__(
        self,
        examples: Sequence[tuple],
        tokenizer: Tokenizer,
        max_tokens: int,
        layers: int = 0,
    ) -> None:
        self.items = []
        self.target_lengths = []  # before the cap, for its warning
        for features, text, *words in examples:
            ids = tokenizer.encode(text)
            self.target_lengths.append(len(ids))
            ids = ids[:max_tokens]
            positions = int(subsampled_lengths(torch.tensor(len(features)), layers))
            links = word_links(text, words[0], tokenizer, layers, positions) if words else None
            self.items.append(
                (
                    torch.from_numpy(np.asarray(features, dtype=np.float32)),
                    [tokenizer.bos_id, *ids, tokenizer.eos_id],
                    text,
                    links[: len(ids)] if links else None,
                )
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


def collate(batch, pad_id: int, layers: int = 0) -> dict:
    """Zero-pad frames and PAD-pad targets to the longest in the batch; each word's
    encoder positions (after ``layers`` subsampling convolutions) as the alignment."""
    features, targets, texts, links = zip(*batch, strict=True)
    lengths = torch.tensor([len(f) for f in features], dtype=torch.long)
    frames = torch.nn.utils.rnn.pad_sequence(list(features), batch_first=True)
    target = pad(targets, pad_id)
    out = {
        "source": (frames, lengths),
        "target": target,
        "references": [[t] for t in texts],
    }
    keys = int(subsampled_lengths(torch.tensor(frames.shape[1]), layers))
    alignment = alignment_matrix(links, target.shape[1] - 1, keys)
    if alignment is not None:
        out["alignment"] = alignment
    return out

"""Captioning data as batches: pixels (padded to the batch's largest image) and a caption.

Every image has several reference captions. Training uses the first one, or (with
``sample_caption``) draws one afresh each time the image is used (torch's global RNG, which
the runner seeds); validation loss uses the first reference; the metrics compare against
all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from xbench.taskkit.data import pad
from xbench.taskkit.text import WordTokenizer


@dataclass(frozen=True)
class CaptionedImage:
    """One image, (H, W, 3) uint8 RGB, and its reference captions."""

    id: str
    pixels: np.ndarray
    captions: tuple[str, ...]


class EncodedCaptions(Dataset):
    """Images as (3, H, W) uint8 tensors and their captions as token ids with BOS/EOS."""

    def __init__(
        self,
        images: Sequence[CaptionedImage],
        tokenizer: WordTokenizer,
        max_target_tokens: int,
        sample_caption: bool,
    ) -> None:
        self.sample_caption = sample_caption
        self.pixels = [
            torch.from_numpy(np.ascontiguousarray(i.pixels)).permute(2, 0, 1) for i in images
        ]
        self.references = [list(i.captions) for i in images]
        encoded = [[tokenizer.encode(c) for c in i.captions] for i in images]
        # Every caption's length before the cap, for its warning.
        self.caption_lengths = [len(ids) for captions in encoded for ids in captions]
        self.targets = [
            [[tokenizer.bos_id, *ids[:max_target_tokens], tokenizer.eos_id] for ids in captions]
            for captions in encoded
        ]

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int):
        targets = self.targets[index]
        pick = int(torch.randint(len(targets), ())) if self.sample_caption else 0
        return self.pixels[index], targets[pick], self.references[index]


def collate(batch, pad_id: int) -> dict:
    """Pads images at the bottom/right with zeros and targets with ``pad_id``."""
    pixels, targets, references = zip(*batch, strict=True)
    height = max(p.shape[1] for p in pixels)
    width = max(p.shape[2] for p in pixels)
    images = torch.zeros(len(pixels), 3, height, width, dtype=torch.uint8)
    for i, p in enumerate(pixels):
        images[i, :, : p.shape[1], : p.shape[2]] = p
    sizes = torch.tensor([p.shape[1:] for p in pixels], dtype=torch.long)
    return {
        "source": {"pixels": images, "sizes": sizes},
        "target": pad(targets, pad_id),
        "references": list(references),
    }

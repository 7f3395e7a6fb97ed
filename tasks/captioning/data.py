"""Captioning data as batches: pixels (padded to the batch's largest image) and a caption.

Every image has several reference captions. Training uses the first one, or (with
``sample_caption``) draws one afresh each time the image is used (torch's global RNG, which
the runner seeds); validation loss uses the first reference; the metrics compare against
all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from xbench.taskkit.data import alignment_matrix, pad
from xbench.taskkit.text import WordTokenizer, split_words
from xbench_tasks.captioning.captions import object_phrases


@dataclass(frozen=True)
class CaptionedImage:
    """One image, (H, W, 3) uint8 RGB, and its reference captions. ``objects`` maps a
    shape the captions name to its (H, W) bool pixel mask, where the data knows it (the
    embedded scenes); empty: no alignment."""

    id: str
    pixels: np.ndarray
    captions: tuple[str, ...]
    objects: dict[str, np.ndarray] = field(default_factory=dict)


def patch_positions(mask: np.ndarray, patch: int) -> list[int]:
    """Encoder positions (the frontend's raster order of the image's own patch grid) of the
    patches that hold any pixel of ``mask`` (H, W)."""
    height, width = mask.shape
    rows, cols = -(-height // patch), -(-width // patch)
    padded = np.zeros((rows * patch, cols * patch), dtype=bool)
    padded[:height, :width] = mask
    hit = padded.reshape(rows, patch, cols, patch).any(axis=(1, 3))
    return [int(p) for p in np.flatnonzero(hit)]


def caption_links(
    caption: str, objects: dict[str, list[int]], tokens: int
) -> list[list[int]] | None:
    """Per caption token (the first ``tokens``), the patches of the object its noun phrase
    names (size, texture, colour and shape words; other words are unknown). None without
    object positions."""
    if not objects:
        return None
    links: list[list[int]] = [[] for _ in range(tokens)]
    for start, end, shape in object_phrases(caption):
        first, last = len(split_words(caption[:start])), len(split_words(caption[:end]))
        for t in range(first, min(last, tokens)):
            links[t] = objects.get(shape, [])
    return links


class EncodedCaptions(Dataset):
    """Images as (3, H, W) uint8 tensors, their captions as token ids with BOS/EOS and
    each caption's alignment links (:func:`caption_links`, on ``patch``-pixel patches)."""

    def __init__(
        self,
        images: Sequence[CaptionedImage],
        tokenizer: WordTokenizer,
        max_target_tokens: int,
        sample_caption: bool,
        patch: int = 1,
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
        self.links = []
        for image, targets in zip(images, self.targets, strict=True):
            objects = {k: patch_positions(m, patch) for k, m in image.objects.items()}
            self.links.append(
                [
                    caption_links(c, objects, len(t) - 2)
                    for c, t in zip(image.captions, targets, strict=True)
                ]
            )

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int):
        targets = self.targets[index]
        pick = int(torch.randint(len(targets), ())) if self.sample_caption else 0
        return self.pixels[index], targets[pick], self.references[index], self.links[index][pick]


def collate(batch, pad_id: int, patch: int = 1) -> dict:
    """Pads images at the bottom/right with zeros and targets with ``pad_id``; the named
    objects' patches as the alignment when the images know them (columns: the frontend's
    positions of ``patch``-pixel patches)."""
    pixels, targets, references, links = zip(*batch, strict=True)
    height = max(p.shape[1] for p in pixels)
    width = max(p.shape[2] for p in pixels)
    images = torch.zeros(len(pixels), 3, height, width, dtype=torch.uint8)
    for i, p in enumerate(pixels):
        images[i, :, : p.shape[1], : p.shape[2]] = p
    sizes = torch.tensor([p.shape[1:] for p in pixels], dtype=torch.long)
    target = pad(targets, pad_id)
    out = {
        "source": {"pixels": images, "sizes": sizes},
        "target": target,
        "references": list(references),
    }
    keys = max(-(-int(h) // patch) * -(-int(w) // patch) for h, w in sizes)
    alignment = alignment_matrix(links, target.shape[1] - 1, keys)
    if alignment is not None:
        out["alignment"] = alignment
    return out

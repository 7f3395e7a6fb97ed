"""Data plumbing every task shares: padding id rows, halving an evaluation set and a data
module over encoded splits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from xbench.api.errors import UserError

Example = TypeVar("Example")


def pad(rows: Sequence[Sequence[int]], value: int, left: bool = False) -> torch.Tensor:
    """(len(rows), longest) LongTensor; short rows padded on the right (or the left)."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        start = width - len(row) if left else 0
        out[i, start : start + len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def split_val_test(examples: Sequence[Example], where: str) -> tuple[list[Example], list[Example]]:
    """One evaluation set as validation (first half) and test (second half) examples;
    ``where`` names the set in the error when it has fewer than two."""
    if len(examples) < 2:
        raise UserError(f"{where}: needs at least 2 examples to give val and test")
    half = len(examples) // 2
    return list(examples[:half]), list(examples[half:])


class SplitDataModule(L.LightningDataModule):
    """Train/val/test loaders over ready datasets; ``collate`` builds the batch dict that
    xbench's batch contract describes (see :mod:`xbench.api.task`)."""

    def __init__(
        self,
        splits: dict[str, Dataset],
        collate: Callable[[list[Any]], dict[str, Any]],
        batch_size: int,
        eval_batch_size: int,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.splits = splits
        self.collate = collate
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers

    def _loader(self, split: str, shuffle: bool, batch_size: int) -> DataLoader:
        # Shuffling draws on torch's global RNG, which the runner seeds.
        return DataLoader(
            self.splits[split],
            batch_size=batch_size,
            shuffle=shuffle,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.eval_batch_size)


def alignment_matrix(
    links: Sequence[Sequence[Sequence[int]] | None], rows: int, keys: int
) -> torch.Tensor | None:
    """The batch's ``alignment`` BoolTensor (B, rows, keys) of the batch contract
    (:mod:`xbench.api.task`) from each example's links: ``links[b][t]`` lists the source
    positions target token ``t`` (BOS excluded) depends on; an example given as None, a
    missing row and a position past ``keys`` stay unknown. None when no example has links."""
    if all(example is None for example in links):
        return None
    out = torch.zeros(len(links), rows, keys, dtype=torch.bool)
    for b, example in enumerate(links):
        for t, positions in enumerate((example or [])[:rows]):
            kept = [p for p in positions if 0 <= p < keys]
            out[b, t, kept] = True
    return out

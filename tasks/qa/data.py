"""QA data as encoder/decoder tensors: source = question + context, target = the answer."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader

from xbench.text import WordTokenizer
from xbench_tasks.qa.examples import QAExample


class EncodedQA(torch.utils.data.Dataset):
    """Examples encoded once: (context ids, question ids, answer ids with BOS/EOS, answers).

    The context is the encoder's source; the question is the decoder's prompt, so the
    decoder's queries carry it and only cross-attention can find the answer.
    """

    def __init__(
        self,
        examples: Sequence[QAExample],
        tokenizer: WordTokenizer,
        max_source_tokens: int,
        max_answer_tokens: int,
    ) -> None:
        self.items = []
        for ex in examples:
            source = tokenizer.encode(ex.context)[:max_source_tokens]
            question = tokenizer.encode(ex.question)
            answer = tokenizer.encode(ex.answers[0])[:max_answer_tokens]
            target = [tokenizer.bos_id, *answer, tokenizer.eos_id]
            self.items.append((source, question, target, list(ex.answers)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


def pad(rows: Sequence[Sequence[int]], value: int, left: bool = False) -> torch.Tensor:
    """(len(rows), longest) LongTensor; short rows padded on the right (or the left)."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        start = width - len(row) if left else 0
        out[i, start : start + len(row)] = torch.tensor(row, dtype=torch.long)
    return out


class QADataModule(L.LightningDataModule):
    """Train/val/test loaders over encoded splits; batches follow xbench's batch contract."""

    def __init__(
        self,
        splits: dict[str, EncodedQA],
        pad_id: int,
        batch_size: int,
        eval_batch_size: int,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.splits = splits
        self.pad_id = pad_id
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers

    def _collate(self, batch):
        sources, questions, targets, references = zip(*batch, strict=True)
        return {
            "source": pad(sources, self.pad_id),
            "prompt": pad(questions, self.pad_id, True),
            "target": pad(targets, self.pad_id),
            "references": list(references),
        }

    def _loader(self, split: str, shuffle: bool, batch_size: int) -> DataLoader:
        # Shuffling draws on torch's global RNG, which the runner seeds.
        return DataLoader(
            self.splits[split],
            batch_size=batch_size,
            shuffle=shuffle,
            collate_fn=self._collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.eval_batch_size)

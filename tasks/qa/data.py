"""QA data as encoder/decoder tensors: source = question + context, target = the answer."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from xbench.taskkit.data import pad
from xbench.taskkit.text import WordTokenizer
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
        max_target_tokens: int,
    ) -> None:
        self.items = []
        for ex in examples:
            source = tokenizer.encode(ex.context)[:max_source_tokens]
            question = tokenizer.encode(ex.question)
            answer = tokenizer.encode(ex.answers[0])[:max_target_tokens]
            target = [tokenizer.bos_id, *answer, tokenizer.eos_id]
            self.items.append((source, question, target, list(ex.answers)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


def collate_qa(batch: list, pad_id: int) -> dict:
    """Context as the source, the question as the left-padded decoder prompt."""
    sources, questions, targets, references = zip(*batch, strict=True)
    return {
        "source": pad(sources, pad_id),
        "prompt": pad(questions, pad_id, left=True),
        "target": pad(targets, pad_id),
        "references": list(references),
    }

"""QA data as encoder/decoder tensors: source = question + context, target = the answer."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from xbench.taskkit.data import alignment_matrix, pad
from xbench.taskkit.text import WordTokenizer, split_words
from xbench_tasks.qa.examples import QAExample


class EncodedQA(torch.utils.data.Dataset):
    """Examples encoded once: (context ids, question ids, answer ids with BOS/EOS, answers,
    alignment links).

    The context is the encoder's source; the question is the decoder's prompt, so the
    decoder's queries carry it and only cross-attention can find the answer. Links (see
    :func:`answer_links`) are None when the example does not say where its answer is.
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
            links = answer_links(ex, len(answer), len(source))
            self.items.append((source, question, target, list(ex.answers), links))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


def answer_links(
    example: QAExample, answer_tokens: int, source_tokens: int
) -> list[list[int]] | None:
    """Answer token i's true position: the i-th token of the answer's span in the context
    (the copy the decoder must read; the span lies inside the fact that states it), none
    when truncation to ``source_tokens`` cut it off. EOS has none (unknown). None when the
    example gives no ``answer_start``."""
    if example.answer_start is None:
        return None
    first = len(split_words(example.context[: example.answer_start]))
    return [[first + i] if first + i < source_tokens else [] for i in range(answer_tokens)]


def collate_qa(batch: list, pad_id: int) -> dict:
    """Context as the source, the question as the left-padded decoder prompt; the answer
    span as the alignment when the examples know it."""
    sources, questions, targets, references, links = zip(*batch, strict=True)
    source, target = pad(sources, pad_id), pad(targets, pad_id)
    out = {
        "source": source,
        "prompt": pad(questions, pad_id, left=True),
        "target": target,
        "references": list(references),
    }
    alignment = alignment_matrix(links, target.shape[1] - 1, source.shape[1])
    if alignment is not None:
        out["alignment"] = alignment
    return out

"""The unit of QA data, whatever its source (embedded generator, SQuAD files, HF hub)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QAExample:
    """A question about ``context`` whose answers are spans of it.

    ``answer_start``: where the first answer's span starts in ``context`` (a character
    offset, as in SQuAD), when the data knows which occurrence answers the question; the
    span's tokens become the example's attention alignment. None: unknown.
    """

    id: str
    context: str
    question: str
    answers: tuple[str, ...]
    answer_start: int | None = None

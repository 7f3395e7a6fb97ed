"""The unit of QA data, whatever its source (embedded generator, SQuAD files, HF hub)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QAExample:
    """A question about ``context`` whose answers are spans of it."""

    id: str
    context: str
    question: str
    answers: tuple[str, ...]

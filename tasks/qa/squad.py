"""SQuAD v1.1-format reading comprehension as ``QAExample`` records.

Two sources, one result: a local SQuAD JSON file (offline, reproducible) and a dataset on
the Hugging Face hub (the flat row format of ``datasets``). Both go through the same checks
so a broken file or dataset fails at load time with a message naming where the fault is,
not as a confusing score or a crash deep inside training.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xbench.api.errors import UserError
from xbench.taskkit.files import read_json
from xbench.taskkit.hf import load_hf_split
from xbench_tasks.qa.examples import QAExample

__all__ = ["load_squad_hf", "load_squad_json", "rows_to_examples"]


def load_squad_json(path: str | Path) -> list[QAExample]:
    """Read a local SQuAD v1.1 JSON file, one example per question, checked as it is read.

    Every problem raises ``UserError`` whose message names the file, and the question id or
    JSON path where there is one, so the user can find and fix the record.
    """
    where = str(path)
    doc = read_json(path, "SQuAD file")
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise UserError(f"SQuAD file {where}: expected a top-level object with a 'data' list")

    examples: list[QAExample] = []
    for a, article in enumerate(data):
        paragraphs = _field(article, "paragraphs", list, where, f"data[{a}]")
        for p, paragraph in enumerate(paragraphs):
            ppath = f"data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", str, where, ppath)
            qas = _field(paragraph, "qas", list, where, ppath)
            for q, qa in enumerate(qas):
                qpath = f"{ppath}.qas[{q}]"
                qid = _question_id(qa, where, qpath)
                label = f"question {qid!r} ({qpath})"
                question = _field(qa, "question", str, where, label)
                answers = _field(qa, "answers", list, where, label)
                spans = []
                for n, answer in enumerate(answers):
                    apath = f"{label}, answers[{n}]"
                    spans.append(
                        (
                            _field(answer, "text", str, where, apath),
                            answer.get("answer_start"),
                        )
                    )
                examples.append(_example(qid, context, question, spans, where, label))

    if not examples:
        raise UserError(f"SQuAD file {where} contains no questions")
    return examples


def rows_to_examples(rows: Iterable[Mapping[str, Any]], *, source: str = "rows") -> list[QAExample]:
    """Turn flat rows (the Hugging Face ``squad`` layout) into checked examples.

    A row is ``{"id", "context", "question", "answers": {"text": [...], "answer_start":
    [...]}}``. Kept apart from ``load_squad_hf`` so the conversion and its checks can be used
    and tested without the ``datasets`` package; ``source`` names the data in error messages.
    """
    examples: list[QAExample] = []
    for r, row in enumerate(rows):
        rpath = f"row {r}"
        qid = _question_id(row, source, rpath)
        label = f"question {qid!r} ({rpath})"
        context = _field(row, "context", str, source, label)
        question = _field(row, "question", str, source, label)
        answers = _field(row, "answers", Mapping, source, label)
        texts = answers.get("text")
        starts = answers.get("answer_start")
        if not _is_list(texts):
            raise UserError(f"{source}: {label}: 'answers.text' must be a list of strings")
        if starts is None:
            starts = [None] * len(texts)
        if not _is_list(starts) or len(starts) != len(texts):
            raise UserError(
                f"{source}: {label}: 'answers.answer_start' must be a list as long as "
                "'answers.text'"
            )
        for n, text in enumerate(texts):
            if not isinstance(text, str):
                raise UserError(f"{source}: {label}: answers.text[{n}] must be a string")
        examples.append(
            _example(qid, context, question, list(zip(texts, starts, strict=True)), source, label)
        )
    if not examples:
        raise UserError(f"{source} contains no questions")
    return examples


def load_squad_hf(name: str, split: str, config: str | None = None) -> list[QAExample]:
    """Load a SQuAD-format dataset from the Hugging Face hub (or its local cache).

    ``datasets`` is an optional dependency (see :mod:`xbench.taskkit.hf`).
    """
    rows, source = load_hf_split(name, split, config)
    return rows_to_examples(rows, source=source)


def _is_list(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _field(record: object, key: str, kind: type, where: str, path: str) -> Any:
    """``record[key]`` if ``record`` is a mapping and the value has the expected type."""
    if not isinstance(record, Mapping):
        raise UserError(f"{where}: {path} must be an object")
    if key not in record:
        raise UserError(f"{where}: {path} has no '{key}'")
    value = record[key]
    if not isinstance(value, kind):
        expected = {str: "a string", list: "a list", Mapping: "an object"}.get(kind, kind)
        raise UserError(f"{where}: {path}: '{key}' must be {expected}")
    return value


def _question_id(record: object, where: str, path: str) -> str:
    """The question id as a string; ids are sometimes numbers in hand-made files."""
    qid = _field(record, "id", (str, int), where, path)
    if isinstance(qid, bool) or str(qid) == "":
        raise UserError(f"{where}: {path}: 'id' must be a non-empty string")
    return str(qid)


def _example(
    qid: str,
    context: str,
    question: str,
    spans: Sequence[tuple[str, object]],
    where: str,
    label: str,
) -> QAExample:
    """Check each answer against the context and deduplicate answers, keeping their order.

    ``answer_start`` is a character offset into the context. Some files carry offsets that
    are off by a few characters; the text is what is scored, so an answer found elsewhere in
    the context is accepted, and only one absent from the context is an error.
    """
    if not spans:
        raise UserError(f"{where}: {label} has no answers")
    answers: list[str] = []
    first_start = None
    for n, (text, start) in enumerate(spans):
        if not text.strip():
            raise UserError(f"{where}: {label}: answer {n} is empty")
        if start is not None and (not isinstance(start, int) or isinstance(start, bool)):
            raise UserError(f"{where}: {label}: answer {n} has a non-integer answer_start")
        at_start = start is not None and context[start : start + len(text)] == text
        if not at_start and text not in context:
            raise UserError(
                f"{where}: {label}: answer {text!r} does not appear in the context "
                f"(answer_start {start})"
            )
        if n == 0 and at_start:
            first_start = start
        if text not in answers:
            answers.append(text)
    return QAExample(qid, context, question, tuple(answers), first_start)

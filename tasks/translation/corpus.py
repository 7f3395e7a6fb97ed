"""Parallel corpora from local files or the Hugging Face hub, as (source, target) pairs.

Every defect a user can fix — a missing file, bytes that are not UTF-8, an empty line,
files of different lengths, a malformed record — raises ``UserError`` naming the file and
the line, at load time, before anything is trained.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from xbench.api.errors import UserError
from xbench.taskkit.files import read_json_lines, read_lines
from xbench.taskkit.hf import load_hf_split

Pair = tuple[str, str]


def load_line_pair(prefix: str, source_lang: str, target_lang: str) -> list[Pair]:
    """``PREFIX.SRC`` and ``PREFIX.TGT``: one sentence per line, line i translates line i."""
    source_path, target_path = f"{prefix}.{source_lang}", f"{prefix}.{target_lang}"
    sources, targets = read_lines(source_path), read_lines(target_path)
    if len(sources) != len(targets):
        shorter = source_path if len(sources) < len(targets) else target_path
        raise UserError(
            f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}; "
            f"{shorter} ends at line {min(len(sources), len(targets))}"
        )
    return list(zip(sources, targets, strict=True))


def load_tsv(path: str) -> list[Pair]:
    """``source<TAB>target`` per line."""
    pairs = []
    for number, line in enumerate(read_lines(path), 1):
        cells = [cell.strip() for cell in line.split("\t")]
        if len(cells) != 2 or not all(cells):
            raise UserError(
                f"{path} line {number}: expected two non-empty tab-separated columns "
                f"(source, target), got {len(cells)} column(s)"
            )
        pairs.append((cells[0], cells[1]))
    return pairs


def load_jsonl(path: str, source_lang: str, target_lang: str) -> list[Pair]:
    """One JSON object per line, ``{"translation": {SRC: ..., TGT: ...}}``."""
    return rows_to_pairs(read_json_lines(path), source_lang, target_lang, path, "line", 1)


def rows_to_pairs(
    rows: Iterable[Any],
    source_lang: str,
    target_lang: str,
    where: str,
    unit: str = "row",
    first: int = 0,
) -> list[Pair]:
    """Pairs from records in the HF translation format, ``{"translation": {lang: text}}``,
    or flat ``{lang: text}`` records (as in Multi30k)."""
    pairs = []
    for number, row in enumerate(rows, first):
        record = row.get("translation", row) if isinstance(row, Mapping) else None
        if not isinstance(record, Mapping):
            raise UserError(
                f"{where} {unit} {number}: expected an object like "
                f'{{"translation": {{"{source_lang}": ..., "{target_lang}": ...}}}}'
            )
        texts = []
        for lang in (source_lang, target_lang):
            text = record.get(lang)
            if not isinstance(text, str) or not text.strip():
                found = ", ".join(sorted(map(str, record))) or "none"
                raise UserError(
                    f"{where} {unit} {number}: no non-empty '{lang}' text (languages: {found})"
                )
            texts.append(text.strip())
        pairs.append((texts[0], texts[1]))
    if not pairs:
        raise UserError(f"{where} has no sentence pairs")
    return pairs


def load_hf(
    name: str, config: str | None, split: str, source_lang: str, target_lang: str
) -> list[Pair]:
    """A split of a translation dataset from the Hugging Face hub (or its local cache)."""
    rows, where = load_hf_split(name, split, config)
    return rows_to_pairs(rows, source_lang, target_lang, where)

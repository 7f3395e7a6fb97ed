"""Real speech: a local folder of WAV/FLAC files with a transcript file, or an HF
``datasets`` audio dataset (``audio`` + ``text`` columns by default, LibriSpeech style).

Every record is decoded and checked when the task is built, before training: a file that
cannot be read, is empty, has another sample rate (unless resampling is allowed) or has no
transcript stops the run with a message naming it — or, when the user asked for it with
``skip_bad_files``, is left out with a warning naming it. The evaluation splits' records
stay at hand (a file's path, an HF row's bytes), so ``Task.waveforms`` decodes their
audio again, as their features were made, only when a model asks for it.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xbench.api.errors import UserError
from xbench.taskkit.files import existing_path, path_kind, read_text
from xbench.taskkit.hf import load_hf_split
from xbench_tasks.speech_to_text.audio import BadAudio, decode_audio, log_mel

if TYPE_CHECKING:
    from xbench_tasks.speech_to_text import SpeechDataOptions

log = logging.getLogger(__name__)
AUDIO_SUFFIXES = (".wav", ".flac")
PATH_COLUMNS = ("path", "file")
SPLITS = ("train", "val", "test")
AUDIO_SPLITS = ("val", "test")  # the splits whose audio Task.waveforms gives
Example = tuple[np.ndarray, str]
AudioLoader = Callable[[], str | Path | bytes]
Kept = tuple[Example, AudioLoader | None]  # an example and, if kept, where its audio is
Waveforms = Callable[[str], list[np.ndarray]]


class RecordChecker:
    """Collects bad records; raises for them unless they may be skipped."""

    def __init__(self, skip: bool) -> None:
        self.skip = skip
        self.bad: list[str] = []

    def reject(self, where: str, reason: str) -> None:
        if self.skip:
            log.warning("skipping %s: %s", where, reason)
        self.bad.append(f"{where} {reason}")

    def finish(self) -> None:
        if self.bad and not self.skip:
            shown = "; ".join(self.bad[:5]) + (
                f"; ... {len(self.bad) - 5} more" if len(self.bad) > 5 else ""
            )
            raise UserError(
                f"{len(self.bad)} bad audio record(s): {shown} "
                "(fix them, or set task.data.skip_bad_files=true to leave them out)"
            )


def examples_of(
    records: Iterable[tuple[str, AudioLoader, str]],
    checker: RecordChecker,
    n_mels: int,
    resample: bool,
    keep_audio: bool = False,
) -> list[tuple[str, Example, AudioLoader | None]]:
    """(where, (features, text), its audio loader if ``keep_audio`` else None) of every
    good (where, audio loader, text) record."""
    out = []
    for where, load, text in records:
        if not text.strip():
            checker.reject(where, "has an empty transcript")
            continue
        try:
            wave = decode_audio(load(), resample)
        except BadAudio as error:
            checker.reject(where, str(error))
            continue
        except OSError as error:
            checker.reject(where, f"cannot be read ({error.strerror or error})")
            continue
        out.append((where, (log_mel(wave, n_mels), text), load if keep_audio else None))
    return out


def with_waveforms(
    splits: dict[str, list[Kept]], resample: bool
) -> tuple[dict[str, list[Example]], Waveforms]:
    """The examples per split and their ``Task.waveforms``: the evaluation splits' audio,
    decoded again when asked for (the same checks and resampling as for their features),
    so it takes no memory and no time until a model needs it."""
    audio = {split: [load for _, load in splits[split]] for split in AUDIO_SPLITS}

    def waveforms(split: str) -> list[np.ndarray]:
        return [decode_audio(load(), resample) for load in audio[split]]

    return {split: [example for example, _ in kept] for split, kept in splits.items()}, waveforms


def _read_transcript(path: Path) -> tuple[list[dict[str, str]], str]:
    text = read_text(path, "transcript file")
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as error:
        raise UserError(f"transcript file {path} cannot be parsed: {error}") from None
    columns = set(rows[0]) if rows else set()
    path_column = next((c for c in PATH_COLUMNS if c in columns), None)
    if path_column is None or "text" not in columns:
        raise UserError(
            f"transcript file {path} needs a header with a 'path' (or 'file') column and a "
            f"'text' column; found: {', '.join(sorted(columns)) or 'no rows'}"
        )
    return rows, path_column


def load_folder(
    folder: str,
    transcript: str,
    n_mels: int,
    resample: bool,
    skip_bad_files: bool,
    split_fractions: tuple[float, float],
    seed: int,
) -> tuple[dict[str, list[Example]], Waveforms]:
    """Examples per split from ``folder`` and its transcript (CSV, or TSV by suffix), and
    the evaluation splits' waveforms (:func:`with_waveforms`).

    Paths in the transcript are relative to ``folder``. An optional ``split`` column
    (train/val/test) fixes the splits; otherwise a seeded shuffle holds out
    ``split_fractions`` (val, test) of the files.
    """
    root = existing_path(folder, "folder", "task.data.path")
    transcript_path = root / transcript
    rows, path_column = _read_transcript(transcript_path)
    checker = RecordChecker(skip_bad_files)
    listed, records, split_of = set(), [], {}
    for line, row in enumerate(rows, start=2):
        name = (row.get(path_column) or "").strip()
        where = f"{transcript_path}:{line} ({name or 'no path'})"
        if not name:
            checker.reject(where, "has no audio path")
            continue
        audio = (root / name).resolve()
        listed.add(audio)
        kind = path_kind(audio)
        if kind != "file":
            found = {"missing": "does not exist", "folder": "is a folder"}.get(kind, f"is {kind}")
            checker.reject(str(audio), f"is listed in {transcript_path}:{line} but {found}")
            continue
        split = (row.get("split") or "").strip()
        if split and split not in SPLITS:
            raise UserError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
        split_of[str(audio)] = split
        records.append((str(audio), lambda a=audio: a, row.get("text") or ""))
    for audio in sorted(p.resolve() for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        if audio not in listed:
            checker.reject(str(audio), f"has no transcript row in {transcript_path}")
    examples = examples_of(records, checker, n_mels, resample, keep_audio=True)
    checker.finish()
    if any(split_of.values()):
        splits = {s: [(ex, a) for where, ex, a in examples if split_of[where] == s] for s in SPLITS}
    else:
        splits = _random_splits([(ex, a) for _, ex, a in examples], split_fractions, seed)
    _check_sizes(splits, str(root))
    return with_waveforms(splits, resample)


def _random_splits(
    examples: list[Kept], fractions: tuple[float, float], seed: int
) -> dict[str, list[Kept]]:
    order = np.random.default_rng(seed).permutation(len(examples))
    n_val, n_test = (max(1, round(f * len(examples))) for f in fractions)
    chosen = [examples[i] for i in order]
    return {
        "val": chosen[:n_val],
        "test": chosen[n_val : n_val + n_test],
        "train": chosen[n_val + n_test :],
    }


def _check_sizes(splits: dict[str, list[Kept]], where: str) -> None:
    empty = [s for s in SPLITS if not splits[s]]
    if empty:
        raise UserError(f"{where}: no usable audio for split(s) {', '.join(empty)}")


def load_hf(data: SpeechDataOptions, n_mels: int) -> tuple[dict[str, list[Example]], Waveforms]:
    """Examples per split of an HF audio dataset and the evaluation splits' waveforms;
    audio is decoded here with soundfile (the column is read undecoded), so every source
    goes through the same checks. Only the evaluation hub splits' rows are kept."""
    checker = RecordChecker(data.skip_bad_files)
    columns = (data.hf_audio_column, data.hf_text_column)
    evaluation = {data.hf_val_split, data.hf_test_split}

    def load(hf_split: str) -> list[Kept]:
        table, _ = load_hf_split(data.hf_name, hf_split, data.hf_config)
        import datasets  # present: load_hf_split has imported it

        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise UserError(
                f"HF dataset {data.hf_name!r} has no column(s) {', '.join(missing)}; "
                f"columns: {', '.join(table.column_names)}"
            )
        table = table.cast_column(data.hf_audio_column, datasets.Audio(decode=False))
        records = hf_records(f"{data.hf_name}[{hf_split}]", table, *columns)
        kept = examples_of(records, checker, n_mels, data.resample, hf_split in evaluation)
        return [(ex, audio) for _, ex, audio in kept]

    splits = data.load_hf_splits(load)
    checker.finish()
    _check_sizes(splits, f"HF dataset {data.hf_name!r}")
    return with_waveforms(splits, data.resample)


def hf_records(
    where: str, rows: Iterable[dict], audio_column: str, text_column: str
) -> Iterator[tuple[str, AudioLoader, str]]:
    """(where, audio loader, text) of rows whose audio is HF's undecoded form
    ``{"bytes": ..., "path": ...}`` (bytes win; a path alone is read from disk)."""
    for i, row in enumerate(rows):
        audio = row[audio_column] or {}
        yield (
            f"{where} row {i} ({audio.get('path') or 'no path'})",
            lambda audio=audio: audio.get("bytes") or audio.get("path") or b"",
            str(row[text_column] or ""),
        )

"""Data paths that are not regular files or folders, unreadable entries and huge folders:
refused in one line before anything reads them, never a hang or a traceback from the
revision hash that runs first."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest

from xbench.api.errors import UserError
from xbench.run import revision
from xbench.run.revision import inputs_hash
from xbench.taskkit.files import existing_path, path_kind, read_text
from xbench_tasks.captioning import real as captioning
from xbench_tasks.qa import squad
from xbench_tasks.speech_to_text import real as speech
from xbench_tasks.translation import corpus


@dataclass
class Options:
    path: str


def special_paths(tmp_path) -> dict[str, str]:
    """A real FIFO, character device, socket and symlink loop."""
    fifo = tmp_path / "pipe.tsv"
    os.mkfifo(fifo)
    sock = tmp_path / "sock.tsv"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    loop = tmp_path / "loop.tsv"
    loop.symlink_to(loop)
    return {
        "a FIFO (named pipe)": str(fifo),
        "a character device": os.devnull,
        "a socket": str(sock),
        "Too many levels of symbolic links": str(loop),
    }


def test_existing_path_refuses_what_is_not_a_file_or_folder(tmp_path):
    for shown, path in special_paths(tmp_path).items():
        where, shown = re.escape(path), re.escape(shown)
        with pytest.raises(UserError, match=rf"^cannot read data file {where}: .*{shown}"):
            existing_path(path, "file", "data file")
        with pytest.raises(UserError, match=rf"^cannot read data {where}: .*{shown}"):
            existing_path(path, "either", "data")


def test_existing_path_checks_the_kind_asked_for(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    assert existing_path(tmp_path / "a.txt") == tmp_path / "a.txt"
    assert existing_path(tmp_path, "folder") == tmp_path
    assert existing_path(tmp_path, "either") == tmp_path
    with pytest.raises(UserError, match=r"it is a file, not a folder$"):
        existing_path(tmp_path / "a.txt", "folder", "images folder")
    with pytest.raises(UserError, match=r"it is a folder, not a regular file$"):
        existing_path(tmp_path, "file")
    with pytest.raises(UserError, match=r"^transcript not found: .*b\.txt$"):
        existing_path(tmp_path / "b.txt", "file", "transcript")
    with pytest.raises(UserError, match=r"a\.txt/c: Not a directory$"):
        existing_path(tmp_path / "a.txt" / "c")


def test_reading_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = special_paths(tmp_path)["a FIFO (named pipe)"]
    outcome: list[str] = []

    def read() -> None:
        try:
            read_text(fifo, "corpus")
        except UserError as error:
            outcome.append(str(error))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    assert outcome == [f"cannot read corpus {fifo}: it is a FIFO (named pipe), not a regular file"]


def test_the_inputs_hash_never_opens_or_fails_on_special_paths(tmp_path):
    hashes: dict[str, str | None] = {}

    def hash_all() -> None:
        for shown, path in special_paths(tmp_path).items():
            hashes[shown] = inputs_hash(Options(path))

    worker = threading.Thread(target=hash_all, daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "the inputs hash blocked on a special file"
    assert len(hashes) == 4 and all(hashes.values())
    assert len(set(hashes.values())) == 4  # each path and kind counts


def test_an_unreadable_entry_is_hashed_not_raised(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "ok.wav").write_bytes(b"1")
    (data / "loop.wav").symlink_to(data / "loop.wav")
    locked = data / "locked.csv"
    locked.write_text("path,text\n")
    locked.chmod(0)
    try:
        first = inputs_hash(Options(str(data)))
        assert first and first == inputs_hash(Options(str(data)))
        assert inputs_hash(Options(str(locked)))
        (data / "ok.wav").write_bytes(b"22")
        assert inputs_hash(Options(str(data))) != first
    finally:
        locked.chmod(0o600)


def test_a_huge_folder_is_hashed_by_a_bounded_listing(tmp_path, monkeypatch):
    monkeypatch.setattr(revision, "LISTING_CAP", 40)
    data = tmp_path / "data"
    deep = data / "a" / "b" / "c"
    deep.mkdir(parents=True)
    for n in range(100):
        (data / f"f{n:03}.wav").write_bytes(b"x")
    (deep / "deep.wav").write_bytes(b"x")
    first = inputs_hash(Options(str(data)))

    (data / "f099.wav").write_bytes(b"past the cap")
    (deep / "deep.wav").write_bytes(b"deeper than the listed levels")
    assert inputs_hash(Options(str(data))) == first
    (data / "f001.wav").write_bytes(b"within the cap")
    assert inputs_hash(Options(str(data))) != first


def test_a_path_prefix_counts_by_the_files_it_begins(tmp_path):
    (tmp_path / "train.en").write_text("a\n")
    (tmp_path / "train.de").write_text("b\n")
    prefix = Options(str(tmp_path / "train"))
    first = inputs_hash(prefix)
    assert first is not None
    (tmp_path / "train.de").write_text("c\n")
    assert inputs_hash(prefix) != first
    assert path_kind(tmp_path / "train") == "missing"


def xbench_run(*overrides: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "xbench.cli", "run", "trainer=debug", *overrides],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done, time.monotonic() - started


def assert_one_line(done: subprocess.CompletedProcess, pattern: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("xbench: error:")]
    assert len(errors) == 1, done.stderr[-2000:]
    assert re.search(pattern, errors[0]), errors[0]


def test_every_task_loader_refuses_a_fifo_without_blocking(tmp_path):
    fifo = special_paths(tmp_path)["a FIFO (named pipe)"]
    loaders = {
        "SQuAD file": lambda: squad.load_squad_json(fifo),
        "annotations file": lambda: captioning.load_coco(fifo, None, 8, True),
        "images folder": lambda: captioning.load_coco(tmp_path / "ann.json", fifo, 8, True),
        "image file": lambda: captioning.load_image(fifo, 8, True),
        "task.data.path": lambda: speech.load_folder(fifo, "t.csv", 8, False, False, (0.1, 0.1), 0),
        "file": lambda: corpus.load_tsv(fifo),
    }
    (tmp_path / "ann.json").write_text('{"images": [], "annotations": []}')
    outcome: dict[str, str] = {}

    def load_all() -> None:
        for what, load in loaders.items():
            try:
                load()
            except UserError as error:
                outcome[what] = str(error)

    worker = threading.Thread(target=load_all, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), f"a loader blocked on a FIFO after {sorted(outcome)}"
    assert sorted(outcome) == sorted(loaders)
    for what, message in outcome.items():
        assert message.startswith(f"cannot read {what} {fifo}: it is a FIFO"), message


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "overrides", "shown"),
    [
        ("translation", ["task.data.source=files", "task.data.train_path={prefix}"], "a FIFO"),
        ("translation", ["task.data.source=tsv", "task.data.train_path={loop}"], "symbolic"),
        (
            "speech_to_text",
            ["task.data.source=folder", "task.data.path={folder}", "task.data.transcript=t.csv"],
            "a FIFO",
        ),
    ],
)
def test_a_run_on_a_special_data_path_is_one_line_within_seconds(tmp_path, task, overrides, shown):
    os.mkfifo(tmp_path / "corpus.en")
    (tmp_path / "corpus.de").write_text("b\n")
    (tmp_path / "audio").mkdir()
    os.mkfifo(tmp_path / "audio" / "t.csv")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    paths = {"prefix": tmp_path / "corpus", "loop": tmp_path / "loop", "folder": tmp_path / "audio"}
    done, seconds = xbench_run(f"task={task}", *(o.format(**paths) for o in overrides))
    assert_one_line(done, rf"^xbench: error: cannot read .*: .*{shown}")
    assert seconds < 30

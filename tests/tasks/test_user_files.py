"""Reading a user's files (xbench.taskkit.files), shared by every task's real-data loader:
each defect is one line naming the file, and the line where there is one."""

from __future__ import annotations

import pytest

from xbench.api.errors import UserError
from xbench.taskkit.files import read_json, read_json_lines, read_lines, read_text
from xbench_tasks.speech_to_text.real import load_folder


def test_text_loses_its_byte_order_mark(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeffeins\nzwei\n".encode())

    assert read_text(path) == "eins\nzwei\n"
    assert read_lines(path) == ["eins", "zwei"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"^corpus not found: .*a\.txt$"),
        (b"", r"^corpus .*a\.txt is empty$"),
        (b" \n\n", r"^corpus .*a\.txt is empty$"),
        (b"ok\nok\n\xff\n", r"^corpus .*a\.txt line 3: not UTF-8 \(byte 6\)$"),
        (b"ok\n  \nok\n", r"^corpus .*a\.txt line 2 is empty$"),
    ],
)
def test_each_defect_names_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "a.txt"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(UserError, match=message):
        read_lines(path, "corpus")


def test_a_folder_is_not_readable(tmp_path):
    with pytest.raises(UserError, match=r"^cannot read file "):
        read_text(tmp_path)


def test_json_errors_give_line_and_column(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text('{"data": [\n  1,\n  oops]}\n')

    with pytest.raises(
        UserError, match=r"^SQuAD file .*doc\.json line 3, column 3: not valid JSON"
    ):
        read_json(path, "SQuAD file")
    path.write_text('{"data": [1]}')
    assert read_json(path) == {"data": [1]}


def test_json_lines_name_the_bad_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n[2]\n{nope\n')

    with pytest.raises(UserError, match=r"rows\.jsonl line 3: not valid JSON"):
        read_json_lines(path)
    path.write_text('{"a": 1}\n[2]\n')
    assert read_json_lines(path) == [{"a": 1}, [2]]


def test_a_transcript_that_is_not_utf8_names_its_line(tmp_path):
    (tmp_path / "transcript.csv").write_bytes(b"path,text\na.wav,caf\xe9\n")

    with pytest.raises(UserError, match=r"transcript file .*transcript\.csv line 2: not UTF-8"):
        load_folder(str(tmp_path), "transcript.csv", 40, False, False, (0.1, 0.1), 0)

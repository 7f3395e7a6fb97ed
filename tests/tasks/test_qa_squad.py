"""SQuAD v1.1 loaders: good data loads exactly; every kind of bad data is a clear UserError."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from xbench.api.errors import UserError
from xbench_tasks.qa.examples import QAExample
from xbench_tasks.qa.squad import load_squad_hf, load_squad_json, rows_to_examples

CTX_1 = "The Nile flows north through Egypt into the Mediterranean Sea."
CTX_2 = "Paris is the capital of France. Paris has many museums."
CTX_3 = "Mount Everest is 8,849 metres tall."


def _answer(context: str, text: str) -> dict:
    return {"text": text, "answer_start": context.index(text)}


def _good_doc() -> dict:
    return {
        "version": "1.1",
        "data": [
            {
                "title": "Rivers",
                "paragraphs": [
                    {
                        "context": CTX_1,
                        "qas": [
                            {
                                "id": "q1",
                                "question": "Which way does the Nile flow?",
                                "answers": [
                                    _answer(CTX_1, "north"),
                                    _answer(CTX_1, "north"),
                                    _answer(CTX_1, "north through Egypt"),
                                ],
                            },
                            {
                                "id": "q2",
                                "question": "Where does the Nile end?",
                                "answers": [_answer(CTX_1, "the Mediterranean Sea")],
                            },
                        ],
                    }
                ],
            },
            {
                "title": "Places",
                "paragraphs": [
                    {
                        "context": CTX_2,
                        "qas": [
                            {
                                "id": "q3",
                                "question": "What is the capital of France?",
                                # the second "Paris" points at its later occurrence
                                "answers": [
                                    {"text": "Paris", "answer_start": 0},
                                    {"text": "Paris", "answer_start": 32},
                                ],
                            }
                        ],
                    },
                    {
                        "context": CTX_3,
                        "qas": [
                            {
                                "id": "q4",
                                "question": "How tall is Everest?",
                                "answers": [
                                    _answer(CTX_3, "8,849 metres"),
                                    _answer(CTX_3, "8,849"),
                                    _answer(CTX_3, "8,849 metres"),
                                ],
                            }
                        ],
                    },
                ],
            },
        ],
    }


def _write(tmp_path: Path, doc: object, name: str = "squad.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _first_qa(doc: dict) -> dict:
    return doc["data"][0]["paragraphs"][0]["qas"][0]


def test_good_file_loads_every_question_with_exact_fields(tmp_path: Path) -> None:
    examples = load_squad_json(_write(tmp_path, _good_doc()))

    north, sea = CTX_1.index("north"), CTX_1.index("the Mediterranean Sea")
    assert examples == [  # answer_start: the first answer's offset, as the file gives it
        QAExample(
            "q1", CTX_1, "Which way does the Nile flow?", ("north", "north through Egypt"), north
        ),
        QAExample("q2", CTX_1, "Where does the Nile end?", ("the Mediterranean Sea",), sea),
        QAExample("q3", CTX_2, "What is the capital of France?", ("Paris",), 0),
        QAExample("q4", CTX_3, "How tall is Everest?", ("8,849 metres", "8,849"), 17),
    ]
    assert all(isinstance(e.answers, tuple) for e in examples)


def test_accepts_str_path_and_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_good_doc()).encode("utf-8"))

    examples = load_squad_json(str(path))

    assert [e.id for e in examples] == ["q1", "q2", "q3", "q4"]


def test_answer_found_away_from_answer_start_is_accepted(tmp_path: Path) -> None:
    doc = _good_doc()
    _first_qa(doc)["answers"] = [{"text": "Egypt", "answer_start": 3}]  # offset is wrong

    examples = load_squad_json(_write(tmp_path, doc))

    assert examples[0].answers == ("Egypt",)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found") as err:
        load_squad_json(tmp_path / "nowhere.json")
    assert "nowhere.json" in str(err.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    with pytest.raises(UserError, match="empty") as err:
        load_squad_json(path)
    assert "empty.json" in str(err.value)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(
        json.dumps(_good_doc(), ensure_ascii=False).replace("Paris", "Pär").encode("latin-1")
    )
    with pytest.raises(UserError, match="UTF-8") as err:
        load_squad_json(path)
    assert "latin1.json" in str(err.value)


def test_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"data": [', encoding="utf-8")
    with pytest.raises(UserError, match="not valid JSON") as err:
        load_squad_json(path)
    assert "broken.json" in str(err.value)


@pytest.mark.parametrize(
    "doc",
    [{"version": "1.1"}, {"data": {"title": "x"}}, [1, 2, 3]],
    ids=["no-data", "data-not-list", "top-level-list"],
)
def test_missing_data_list(tmp_path: Path, doc: object) -> None:
    with pytest.raises(UserError, match="'data' list") as err:
        load_squad_json(_write(tmp_path, doc, "nodata.json"))
    assert "nodata.json" in str(err.value)


@pytest.mark.parametrize(
    "doc",
    [
        {"data": []},
        {"data": [{"title": "t", "paragraphs": []}]},
        {"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": []}]}]},
    ],
    ids=["no-articles", "no-paragraphs", "no-qas"],
)
def test_no_questions(tmp_path: Path, doc: dict) -> None:
    with pytest.raises(UserError, match="no questions") as err:
        load_squad_json(_write(tmp_path, doc, "hollow.json"))
    assert "hollow.json" in str(err.value)


def test_question_without_answers_names_the_question(tmp_path: Path) -> None:
    doc = _good_doc()
    doc["data"][1]["paragraphs"][1]["qas"][0]["answers"] = []
    with pytest.raises(UserError, match="no answers") as err:
        load_squad_json(_write(tmp_path, doc, "noans.json"))
    message = str(err.value)
    assert "noans.json" in message
    assert "'q4'" in message
    assert "data[1].paragraphs[1].qas[0]" in message


def test_answer_absent_from_context_names_the_question(tmp_path: Path) -> None:
    doc = _good_doc()
    _first_qa(doc)["answers"].append({"text": "south", "answer_start": 14})
    with pytest.raises(UserError, match="does not appear in the context") as err:
        load_squad_json(_write(tmp_path, doc, "badspan.json"))
    message = str(err.value)
    assert "badspan.json" in message
    assert "'q1'" in message
    assert "'south'" in message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda qa: qa.pop("question"), "has no 'question'"),
        (lambda qa: qa.update(answers="north"), "'answers' must be a list"),
        (lambda qa: qa["answers"].append({"answer_start": 0}), "has no 'text'"),
        (lambda qa: qa["answers"].append({"text": "  ", "answer_start": 0}), "is empty"),
        (
            lambda qa: qa["answers"].append({"text": "north", "answer_start": "14"}),
            "non-integer answer_start",
        ),
    ],
    ids=["no-question", "answers-not-list", "answer-no-text", "blank-answer", "str-offset"],
)
def test_malformed_question_records(tmp_path: Path, edit, expected: str) -> None:
    doc = _good_doc()
    edit(_first_qa(doc))
    with pytest.raises(UserError, match=expected) as err:
        load_squad_json(_write(tmp_path, doc, "malformed.json"))
    assert "malformed.json" in str(err.value)
    assert "'q1'" in str(err.value)


def test_paragraph_without_context_names_the_json_path(tmp_path: Path) -> None:
    doc = _good_doc()
    del doc["data"][1]["paragraphs"][0]["context"]
    with pytest.raises(UserError, match="has no 'context'") as err:
        load_squad_json(_write(tmp_path, doc, "noctx.json"))
    assert "noctx.json" in str(err.value)
    assert "data[1].paragraphs[0]" in str(err.value)


def _rows() -> list[dict]:
    return [
        {
            "id": "r1",
            "title": "Places",
            "context": CTX_2,
            "question": "What is the capital of France?",
            "answers": {"text": ["Paris", "Paris", "France"], "answer_start": [0, 32, 24]},
        },
        {
            "id": "r2",
            "title": "Mountains",
            "context": CTX_3,
            "question": "How tall is Everest?",
            "answers": {"text": ["8,849 metres"], "answer_start": [17]},
        },
    ]


def test_rows_to_examples_flat_rows() -> None:
    assert rows_to_examples(_rows()) == [  # answer_start: the first answer's offset
        QAExample("r1", CTX_2, "What is the capital of France?", ("Paris", "France"), 0),
        QAExample("r2", CTX_3, "How tall is Everest?", ("8,849 metres",), 17),
    ]


def test_rows_to_examples_accepts_any_iterable() -> None:
    examples = rows_to_examples(row for row in _rows())
    assert [e.id for e in examples] == ["r1", "r2"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda row: row.update(answers={"text": [], "answer_start": []}), "no answers"),
        (lambda row: row["answers"].update(text=["Rome"], answer_start=[0]), "does not appear"),
        (lambda row: row["answers"].update(answer_start=[17, 0]), "as long as"),
        (lambda row: row.pop("context"), "has no 'context'"),
    ],
    ids=["unanswerable", "absent-answer", "length-mismatch", "no-context"],
)
def test_rows_to_examples_bad_rows_name_source_and_question(edit, expected: str) -> None:
    rows = _rows()
    edit(rows[1])
    with pytest.raises(UserError, match=expected) as err:
        rows_to_examples(rows, source="my-squad")
    assert "my-squad" in str(err.value)
    assert "'r2'" in str(err.value)


def test_rows_to_examples_no_rows() -> None:
    with pytest.raises(UserError, match="no questions"):
        rows_to_examples([], source="nothing")


def test_load_squad_hf_without_datasets_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(UserError, match=r"pip install 'xbench\[hf\]'"):
        load_squad_hf("squad", "validation")


def test_load_squad_hf_passes_arguments_and_converts_rows(monkeypatch) -> None:
    calls = []

    def fake_load_dataset(name, config, split):
        calls.append((name, config, split))
        return _rows()

    fake = types.ModuleType("datasets")
    fake.load_dataset = fake_load_dataset
    monkeypatch.setitem(sys.modules, "datasets", fake)

    examples = load_squad_hf("someone/squad-like", "train", config="plain_text")

    assert calls == [("someone/squad-like", "plain_text", "train")]
    assert [e.id for e in examples] == ["r1", "r2"]
    assert examples[0].answers == ("Paris", "France")


def test_load_squad_hf_load_failure_is_user_error(monkeypatch) -> None:
    def failing_load_dataset(name, config, split):
        raise FileNotFoundError(f"Dataset {name} doesn't exist on the Hub")

    fake = types.ModuleType("datasets")
    fake.load_dataset = failing_load_dataset
    monkeypatch.setitem(sys.modules, "datasets", fake)

    with pytest.raises(UserError, match="cannot load dataset 'nope/missing'"):
        load_squad_hf("nope/missing", "train")

"""The translation task: grammar against hand-checked German, the embedded corpus, the
real-corpus loaders and their error messages, the subword tokenizer and the metrics."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sacrebleu
from helpers import composed_config

from xbench.api.errors import UserError
from xbench.registry import get_registry
from xbench.run.plan import plan_run
from xbench.run.runner import execute
from xbench.taskkit.files import read_lines
from xbench_tasks.translation import (
    TranslationDataOptions,
    TranslationOptions,
    build_translation,
    documents,
    load_pairs,
)
from xbench_tasks.translation.corpus import (
    load_jsonl,
    load_line_pair,
    load_tsv,
    rows_to_pairs,
)
from xbench_tasks.translation.grammar import Clause, sentence_pair
from xbench_tasks.translation.lexicon import load_lexicon
from xbench_tasks.translation.metrics import translation_metrics
from xbench_tasks.translation.phrases import NounPhrase
from xbench_tasks.translation.tokenizer import SubwordTokenizer, train_subword_model

LEXICON = load_lexicon()
SMALL = TranslationDataOptions(train_size=200, val_size=30, test_size=30)


def noun(en: str, determiner: str = "the", plural: bool = False, adjective=None, count=0):
    entry = next(n for n in LEXICON.nouns if n.en == en)
    adj = next(a for a in LEXICON.adjectives if a.en == adjective) if adjective else None
    return NounPhrase(noun=entry, determiner=determiner, plural=plural, adjective=adj, count=count)


def verb(en: str, particle: str | None = None, frame: str | None = None):
    return next(
        v
        for v in LEXICON.verbs
        if v.en == en and v.en_particle == particle and frame in (None, v.frame)
    )


def time(en: str):
    return next(a for a in LEXICON.adverbs if a.en == en)


# (clause, English, German main clause, German subordinate clause), checked by hand.
CLAUSES = [
    (
        Clause(noun("man"), verb("see"), "present", accusative=noun("dog", "a", adjective="big")),
        "the man sees a big dog",
        "der Mann sieht einen großen Hund",
        "der Mann einen großen Hund sieht",
    ),
    (
        Clause(
            noun("woman"),
            verb("give", frame="dat_acc"),
            "past",
            dative=noun("child", adjective="small"),
            accusative=noun("book", "a", adjective="new"),
            to_dative=True,
        ),
        "the woman gave a new book to the small child",
        "die Frau hat dem kleinen Kind ein neues Buch gegeben",
        "die Frau dem kleinen Kind ein neues Buch gegeben hat",
    ),
    (
        Clause(NounPhrase(pronoun="I"), verb("call"), "present", accusative=noun("teacher", "my")),
        "I call my teacher",
        "ich rufe meinen Lehrer an",
        "ich meinen Lehrer anrufe",
    ),
    (
        Clause(noun("boy"), verb("help"), "present", dative=noun("neighbour")),
        "the boy helps the neighbour",
        "der Junge hilft dem Nachbarn",
        "der Junge dem Nachbarn hilft",
    ),
    (
        Clause(
            noun("child", plural=True), verb("eat"), "present", True, accusative=noun("apple", "a")
        ),
        "the children do not eat an apple",
        "die Kinder essen keinen Apfel",
        "die Kinder keinen Apfel essen",
    ),
    (
        Clause(
            NounPhrase(pronoun="she"),
            verb("switch", "on"),
            "present",
            True,
            accusative=noun("lamp"),
            contracted=True,
        ),
        "she doesn't switch on the lamp",
        "sie schaltet die Lampe nicht ein",
        "sie die Lampe nicht einschaltet",
    ),
    (
        Clause(
            NounPhrase(pronoun="we"),
            verb("visit"),
            "future",
            accusative=noun("city", adjective="old"),
            going_to=True,
        ),
        "we are going to visit the old city",
        "wir werden die alte Stadt besuchen",
        "wir die alte Stadt besuchen werden",
    ),
    (
        Clause(noun("cat"), verb("sleep"), "present", adverbial=("loc", noun("garden"))),
        "the cat sleeps in the garden",
        "die Katze schläft im Garten",
        "die Katze im Garten schläft",
    ),
    (
        Clause(NounPhrase(name="Anna"), verb("go"), "past", adverbial=("dest", noun("school"))),
        "Anna went to the school",
        "Anna ist zur Schule gegangen",
        "Anna zur Schule gegangen ist",
    ),
    (
        Clause(noun("train"), verb("arrive"), "past", adverbial=("loc", noun("station"))),
        "the train arrived in the station",
        "der Zug ist im Bahnhof angekommen",
        "der Zug im Bahnhof angekommen ist",
    ),
    (
        Clause(noun("girl"), verb("swim"), "can", True, contracted=True),
        "the girl can't swim",
        "das Mädchen kann nicht schwimmen",
        "das Mädchen nicht schwimmen kann",
    ),
    (
        Clause(
            noun("dog", plural=True),
            None,
            "past",
            True,
            predicate=next(a for a in LEXICON.adjectives if a.en == "hungry"),
        ),
        "the dogs were not hungry",
        "die Hunde waren nicht hungrig",
        "die Hunde nicht hungrig waren",
    ),
    (
        Clause(noun("dog"), verb("wait", "for"), "present", True, prepositional=noun("bus")),
        "the dog does not wait for the bus",
        "der Hund wartet nicht auf den Bus",
        "der Hund nicht auf den Bus wartet",
    ),
    (
        Clause(
            NounPhrase(pronoun="I"),
            verb("wash"),
            "present",
            accusative=noun("car", "my", adjective="small"),
        ),
        "I wash my small car",
        "ich wasche mein kleines Auto",
        "ich mein kleines Auto wasche",
    ),
    (
        Clause(
            noun("boy"),
            verb("talk", "to"),
            "present",
            prepositional=noun("teacher", plural=True, adjective="friendly"),
        ),
        "the boy talks to the friendly teachers",
        "der Junge spricht mit den freundlichen Lehrern",
        "der Junge mit den freundlichen Lehrern spricht",
    ),
    (
        Clause(
            NounPhrase(pronoun="you"),
            verb("watch", "TV"),
            "present",
            adverbial=("loc", noun("living room")),
        ),
        "you watch TV in the living room",
        "du siehst im Wohnzimmer fern",
        "du im Wohnzimmer fernsiehst",
    ),
    (
        Clause(
            noun("cook"),
            verb("buy"),
            "past",
            accusative=noun("apple", "number", True, "red", 21),
            time=time("yesterday"),
        ),
        "the cook bought twenty-one red apples yesterday",
        "der Koch hat gestern einundzwanzig rote Äpfel gekauft",
        "der Koch gestern einundzwanzig rote Äpfel gekauft hat",
    ),
    (
        Clause(
            noun("grandmother"),
            verb("play"),
            "future",
            adverbial=("with", noun("cat", "number", True, count=34)),
        ),
        "the grandmother will play with thirty-four cats",
        "die Großmutter wird mit vierunddreißig Katzen spielen",
        "die Großmutter mit vierunddreißig Katzen spielen wird",
    ),
    (
        Clause(
            noun("student"),
            verb("read"),
            "present",
            accusative=noun("newspaper", "this"),
            time=time("on Monday"),
        ),
        "the student reads this newspaper on Monday",
        "der Student liest am Montag diese Zeitung",
        "der Student am Montag diese Zeitung liest",
    ),
]


@pytest.mark.parametrize("clause, english, main, subordinate", CLAUSES)
def test_clauses_match_hand_checked_translations(clause, english, main, subordinate):
    assert clause.english() == english
    assert clause.german("main") == main
    assert clause.german("sub") == subordinate


def test_weak_nouns_and_dative_plurals_take_their_endings():
    assert noun("student", "a").german("acc") == "einen Studenten"
    assert noun("student", "a").german("nom") == "ein Student"
    assert noun("child", plural=True).german("dat", preposition="mit") == "mit den Kindern"
    assert noun("car", plural=True).german("dat") == "den Autos"
    assert noun("woman", "bare", True, "happy").german("dat") == "glücklichen Frauen"
    assert noun("umbrella", "a").english() == "an umbrella"


def test_sentences_reorder_verbs_around_conjunctions():
    arrive = Clause(noun("train"), verb("arrive"), "present")
    wait = Clause(
        noun("child", plural=True), verb("wait", "for"), "present", prepositional=noun("bus")
    )
    concert = Clause(noun("concert"), verb("begin"), "present")
    dance = Clause(noun("child", plural=True), verb("dance"), "present")
    film = Clause(noun("film"), verb("take", "place"), "present", adverbial=("loc", noun("cinema")))
    say = Clause(NounPhrase(name="Anna"), verb("say"), "present")
    buy = Clause(
        noun("man"), verb("buy"), "past", accusative=noun("car", "a"), time=time("yesterday")
    )
    assert sentence_pair("because", wait, arrive) == (
        "The children wait for the bus because the train arrives.",
        "Die Kinder warten auf den Bus, weil der Zug ankommt.",
    )
    assert sentence_pair("when", concert, dance) == (
        "When the concert begins, the children dance.",
        "Wenn das Konzert anfängt, tanzen die Kinder.",
    )
    assert sentence_pair("that", say, film) == (
        "Anna says that the film takes place in the cinema.",
        "Anna sagt, dass der Film im Kino stattfindet.",
    )
    assert sentence_pair("main", buy, time_first=True) == (
        "Yesterday the man bought a car.",
        "Gestern hat der Mann ein Auto gekauft.",
    )


def test_embedded_corpus_is_deterministic_cached_and_seed_dependent():
    first, info = load_pairs(SMALL)
    again, info_again = load_pairs(SMALL)
    assert first == again and info["checksum"] == info_again["checksum"]
    other, _ = load_pairs(TranslationDataOptions(train_size=200, val_size=30, test_size=30, seed=9))
    assert other["train"] != first["train"]
    assert {len(p) for p in first.values()} == {200, 30}


def test_embedded_splits_share_no_sentence():
    splits, _ = load_pairs(TranslationDataOptions(train_size=3000, val_size=300, test_size=300))
    seen = {}
    for split, pairs in splits.items():
        for source, target in pairs:
            for key in (("en", source), ("de", target)):
                assert seen.setdefault(key, split) == split, f"{key} in {seen[key]} and {split}"


def test_sentences_per_example_makes_documents_and_reverse_direction():
    data = TranslationDataOptions(train_size=20, val_size=4, test_size=4, sentences_per_example=5)
    splits, _ = load_pairs(data)
    assert len(splits["test"]) == 20  # sentences; grouped into examples later
    docs = documents(splits["test"], 5)
    assert len(docs) == 4 and all(doc[1].count(".") >= 5 for doc in docs)
    reverse, _ = load_pairs(
        TranslationDataOptions(
            train_size=20,
            val_size=4,
            test_size=4,
            source_lang="de",
            target_lang="en",
            sentences_per_example=5,
        )
    )
    assert reverse["test"] == [(de, en) for en, de in splits["test"]]
    with pytest.raises(UserError, match="en/de or de/en"):
        load_pairs(TranslationDataOptions(source_lang="fr"))


def test_subword_tokenizer_round_trips_and_is_cached(tmp_path, monkeypatch):
    splits, _ = load_pairs(SMALL)
    texts = [text for pair in splits["train"] for text in pair]
    path = train_subword_model(iter(texts), 300, "key")
    tokenizer = SubwordTokenizer(path)
    assert tokenizer.vocab_size <= 300
    for text in texts[:50]:
        ids = tokenizer.encode(text)
        assert tokenizer.decode([*ids, tokenizer.eos_id, 7, 8]) == text
    stamp = path.stat().st_mtime_ns
    assert train_subword_model(iter(texts), 300, "key") == path
    assert path.stat().st_mtime_ns == stamp  # loaded, not trained again
    monkeypatch.setenv("XBENCH_CACHE_DIR", str(tmp_path / "other"))
    retrained = train_subword_model(iter(texts), 300, "key")
    assert retrained != path and retrained.read_bytes() == path.read_bytes()


def test_metrics_match_sacrebleu():
    predictions = ["Der Hund schläft im Garten.", "Ich rufe meinen Lehrer an.", "Das Kind."]
    references = [
        ["Der Hund schläft im Garten."],
        ["Ich rufe den Lehrer an."],
        ["Das Kind spielt."],
    ]
    metrics = translation_metrics()
    metrics.update(predictions, references)
    scores = {k: float(v) for k, v in metrics.compute().items()}
    streams = [list(r) for r in zip(*references, strict=True)]
    assert scores["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(predictions, streams).score, abs=1e-3
    )
    assert scores["chrf"] == pytest.approx(
        sacrebleu.corpus_chrf(predictions, streams).score, abs=1e-3
    )


# Real corpora ---------------------------------------------------------------------------

PAIRS = [(f"the house number {i} is red .", f"das Haus Nummer {i} ist rot .") for i in range(40)]


def write_pair(prefix, pairs, src="en", tgt="de"):
    (prefix.parent / f"{prefix.name}.{src}").write_text("\n".join(s for s, _ in pairs) + "\n")
    (prefix.parent / f"{prefix.name}.{tgt}").write_text("\n".join(t for _, t in pairs) + "\n")
    return str(prefix)


def test_line_pair_tsv_and_jsonl_loaders_read_the_same_pairs(tmp_path):
    assert load_line_pair(write_pair(tmp_path / "train", PAIRS), "en", "de") == PAIRS
    (tmp_path / "c.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS))
    assert load_tsv(str(tmp_path / "c.tsv")) == PAIRS
    rows = [json.dumps({"translation": {"de": t, "en": s}}) for s, t in PAIRS]
    (tmp_path / "c.jsonl").write_text("\n".join(rows))
    assert load_jsonl(str(tmp_path / "c.jsonl"), "en", "de") == PAIRS
    assert load_jsonl(str(tmp_path / "c.jsonl"), "de", "en") == [(t, s) for s, t in PAIRS]
    flat = [{"en": s, "de": t} for s, t in PAIRS[:3]]
    assert rows_to_pairs(flat, "en", "de", "multi30k") == PAIRS[:3]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(UserError, match=r"file not found: .*nope\.de"):
        load_line_pair(write_pair(tmp_path / "x", PAIRS)[:-1] + "nope", "de", "en")


def test_non_utf8_file_names_file_and_line(tmp_path):
    path = tmp_path / "bad.de"
    path.write_bytes("eins\nüber\n".encode() + b"dr\xe4i\n")
    with pytest.raises(UserError, match=r"bad\.de line 3: not UTF-8"):
        read_lines(path)


def test_empty_line_names_file_and_line(tmp_path):
    prefix = write_pair(tmp_path / "train", PAIRS)
    lines = (tmp_path / "train.de").read_text().splitlines()
    lines[6] = "  "
    (tmp_path / "train.de").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"train\.de line 7 is empty"):
        load_line_pair(prefix, "en", "de")


def test_mismatched_line_counts_name_both_files(tmp_path):
    prefix = write_pair(tmp_path / "train", PAIRS)
    (tmp_path / "train.de").write_text("\n".join(t for _, t in PAIRS[:-2]))
    with pytest.raises(UserError, match=r"train\.en has 40 lines but .*train\.de has 38.*line 38"):
        load_line_pair(prefix, "en", "de")


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("c.tsv", "a\tb\nonly one column\n", r"c\.tsv line 2: expected two non-empty"),
        ("c.tsv", "a\tb\nx\t\n", r"c\.tsv line 2: expected two non-empty"),
        ("c.jsonl", '{"translation": {"en": "a", "de": "b"}}\n{oops\n', r"line 2: not valid JSON"),
        ("c.jsonl", '{"translation": {"en": "a", "fr": "b"}}\n', r"line 1: no non-empty 'de'"),
        ("c.jsonl", "[1, 2]\n", r"line 1: expected an object"),
    ],
)
def test_malformed_records_name_file_and_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    loader = load_tsv if name.endswith("tsv") else lambda p: load_jsonl(p, "en", "de")
    with pytest.raises(UserError, match=message):
        loader(str(tmp_path / name))


def test_one_pair_of_files_is_split_into_disjoint_train_val_test(tmp_path):
    data = TranslationDataOptions(source="files", train_path=write_pair(tmp_path / "all", PAIRS))
    splits, info = load_pairs(data)
    assert [len(splits[s]) for s in ("val", "test")] == [4, 4]  # a tenth each
    assert len(splits["train"]) == 32 and info["source"] == "files"
    sources = [{s for s, _ in splits[k]} for k in ("train", "val", "test")]
    assert not (sources[0] & sources[1]) and not (sources[0] & sources[2])


def test_val_without_test_is_halved(tmp_path):
    data = TranslationDataOptions(
        source="files",
        train_path=write_pair(tmp_path / "train", PAIRS[:30]),
        val_path=write_pair(tmp_path / "valid", PAIRS[30:]),
    )
    splits, _ = load_pairs(data)
    assert splits["train"] == PAIRS[:30]
    assert splits["val"] == PAIRS[30:35] and splits["test"] == PAIRS[35:]


def test_hf_without_datasets_is_a_user_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(UserError, match=r"pip install 'xbench\[hf\]'"):
        load_pairs(TranslationDataOptions(source="hf", hf_name="wmt/wmt14", hf_config="de-en"))


def test_real_files_build_a_task_with_a_subword_model(tmp_path):
    prefix = write_pair(tmp_path / "train", PAIRS * 3)
    task = build_translation(
        TranslationOptions(
            data=TranslationDataOptions(source="files", train_path=prefix), vocab_size=60
        )
    )
    assert task.primary_metric == "bleu" and task.higher_is_better
    assert task.artifacts["subword.model"].exists()
    assert task.data_info["checksum"] and task.data_info["sizes"]["test"] == 12
    source, target, references, links = task.datamodule.splits["test"][0]
    assert task.tokenizer.decode(target[1:]) == references[0]
    assert links is None  # real files carry no word alignment


@pytest.mark.slow
def test_fast_dev_run_through_the_runner(tmp_path):
    sizes = ["task.data.train_size=64", "task.data.val_size=8", "task.data.test_size=8"]
    config = composed_config(
        [
            "backend=naive",
            "task=translation",
            "trainer=debug",
            "logger=none",
            "task.batch_size=8",
            "task.vocab_size=300",
            "task.max_source_tokens=16",
            "task.max_target_tokens=8",
            *sizes,
        ]
    )
    result = execute(plan_run(config, get_registry()), tmp_path)
    assert result.status == "ok", result.error
    assert set(result.quality.metrics) == {"bleu", "chrf"}
    assert 0.0 <= result.quality.primary <= 100.0
    assert (tmp_path / "artifacts" / "subword.model").exists()
    assert result.task.data["source"] == "embedded"


@pytest.mark.slow
def test_cli_reports_a_bad_file_in_one_line(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "xbench.cli",
            "run",
            "task=translation",
            "logger=none",
            "task.data.source=files",
            f"task.data.train_path={tmp_path / 'missing'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "file not found" in done.stderr and "missing.en" in done.stderr
    assert "Traceback" not in done.stderr

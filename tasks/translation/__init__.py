"""``translation``: English → German (or any pair of a real corpus), scored by BLEU.

Data: an embedded corpus generated from a bilingual lexicon and a German grammar (default;
offline, seeded, cached with a checksum), or real parallel text — a pair of
one-sentence-per-line files, TSV, JSONL or a dataset on the Hugging Face hub.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import xbench
from xbench.api.errors import UserError
from xbench.api.options import option
from xbench.api.task import Task, TaskSpec
from xbench.taskkit.cache import cached_json
from xbench.taskkit.data import split_val_test
from xbench.taskkit.hf import HFSourceOptions
from xbench.taskkit.lengths import LENGTH_LAWS, drawn_lengths
from xbench.taskkit.options import SplitOptions, TextLoaderOptions, data_source, with_default
from xbench.taskkit.text import TokenFrontend
from xbench.taskkit.truncation import truncation_warnings
from xbench_tasks.translation import corpus
from xbench_tasks.translation.corpus import Pair
from xbench_tasks.translation.data import EncodedPairs, collate_pairs
from xbench_tasks.translation.grammar import SentenceGenerator
from xbench_tasks.translation.lexicon import load_lexicon
from xbench_tasks.translation.metrics import TRANSLATION_STATISTICS, translation_metrics
from xbench_tasks.translation.phrases import Links
from xbench_tasks.translation.tokenizer import SubwordTokenizer, train_subword_model

# Part of the cache key: bump it whenever the generator's output changes.
GENERATOR_VERSION = 2
SPLITS = ("train", "val", "test")


@dataclass
class TranslationDataOptions(SplitOptions, HFSourceOptions):
    source: str = data_source("files", "tsv", "jsonl", "hf")
    sentences_per_example: int = option(
        1, help="consecutive sentences joined into one example (document length)", min=1, max=500
    )
    train_sentences_per_example: int = option(
        0,
        help="training documents' sentences, for a length curriculum (train short, evaluate "
        "at sentences_per_example); 0: sentences_per_example",
        min=0,
        max=500,
    )
    train_lengths: str = option(
        "fixed",
        help="training documents' sentences: fixed (that many) | uniform | loguniform "
        "(1 … that many, drawn, seeded): short ones find the alignment, long ones teach long "
        "sources and where they end",
        choices=LENGTH_LAWS,
    )
    translate: str = option(
        "all",
        help="all (every sentence of a document) | marked (only the one sentence between "
        "[ and ] in the source: found anywhere in the document, then translated)",
        choices=("all", "marked"),
    )
    source_lang: str = option("en", help="source language code (embedded: en or de)")
    target_lang: str = option("de", help="target language code (embedded: de or en)")
    # embedded generator
    val_size: int = with_default(SplitOptions, "val_size", 250)
    max_number: int = option(99, help="embedded: counts run from two to this", min=2, max=10**6)

    def sentences_in(self, split: str) -> int:
        """Sentences per example of ``split`` (the curriculum's for training)."""
        if split == "train" and self.train_sentences_per_example:
            return self.train_sentences_per_example
        return self.sentences_per_example

    def document_sizes(self, split: str, count: int) -> list[int]:
        """Sentences in each of the first ``count`` examples of ``split``."""
        law = self.train_lengths if split == "train" else "fixed"
        return drawn_lengths(law, self.sentences_in(split), count, f"{self.seed}/{split}/lengths")

    # real data
    train_path: str | None = option(
        None, help="files: path prefix (PREFIX.SRC, PREFIX.TGT); tsv/jsonl: the file"
    )
    val_path: str | None = option(None, help="like train_path; unset: split off train")
    test_path: str | None = option(None, help="like train_path; unset: half of val or train")


@dataclass
class TranslationOptions(TextLoaderOptions):
    data: TranslationDataOptions = field(default_factory=TranslationDataOptions)
    vocab_size: int = option(
        2000, help="subword vocabulary, shared by source and target", min=16, max=10**6
    )
    max_source_tokens: int = with_default(TextLoaderOptions, "max_source_tokens", 4096)
    max_target_tokens: int = with_default(TextLoaderOptions, "max_target_tokens", 4096)


def load_aligned_pairs(
    data: TranslationDataOptions,
) -> tuple[dict[str, list[Pair]], dict, dict[str, list[Links]] | None]:
    """:func:`load_pairs` and each pair's word alignment (embedded data only, else None)."""
    if data.source == "embedded":
        return _embedded(data)
    return *load_pairs(data), None


def load_pairs(data: TranslationDataOptions) -> tuple[dict[str, list[Pair]], dict]:
    """Sentence pairs per split and what identifies their source (for the run record)."""
    if data.source == "embedded":
        splits, info, _ = _embedded(data)
        return splits, info
    if data.source == "hf":
        languages = (data.source_lang, data.target_lang)
        splits = data.load_hf_splits(
            lambda split: corpus.load_hf(data.hf_name, data.hf_config, split, *languages)
        )
        return splits, {"source": "hf", "name": data.hf_name, "config": data.hf_config}
    if not data.train_path:
        raise UserError(f"task.data.source={data.source} needs task.data.train_path")
    paths = dict(zip(SPLITS, (data.train_path, data.val_path, data.test_path), strict=True))
    loaded = {split: _load_file(data, path) for split, path in paths.items() if path}
    return _complete_splits(loaded, data), {"source": data.source, "paths": paths}


def _load_file(data: TranslationDataOptions, path: str) -> list[Pair]:
    if data.source == "files":
        return corpus.load_line_pair(path, data.source_lang, data.target_lang)
    if data.source == "tsv":
        return corpus.load_tsv(path)
    return corpus.load_jsonl(path, data.source_lang, data.target_lang)


def _complete_splits(loaded: dict[str, list[Pair]], data: TranslationDataOptions) -> dict:
    """Fill in missing evaluation splits: test = second half of valid; otherwise held out
    from train (at most a tenth each, seeded), dropping training pairs they contain."""
    train, val, test = loaded["train"], loaded.get("val"), loaded.get("test")
    if val is not None and test is None:
        val, test = split_val_test(val, data.val_path)
    needed = {"val": val is None, "test": test is None}
    if any(needed.values()):
        shuffled = train[:]
        random.Random(data.seed).shuffle(shuffled)
        cap = len(train) // 10
        if cap < 1:
            raise UserError(
                f"{data.train_path}: {len(train)} pairs are too few to hold out validation and "
                "test data; give task.data.val_path or at least 10 pairs"
            )
        sizes = {"val": min(data.val_size, cap), "test": min(data.test_size, cap)}
        held = {}
        for split in ("val", "test"):
            if needed[split]:
                held[split], shuffled = shuffled[: sizes[split]], shuffled[sizes[split] :]
        val, test = held.get("val", val), held.get("test", test)
        evaluation = {source for source, _ in val + test}
        train = [pair for pair in shuffled if pair[0] not in evaluation]
    return {"train": train, "val": val, "test": test}


def _embedded(
    data: TranslationDataOptions,
) -> tuple[dict[str, list[Pair]], dict, dict[str, list[Links]]]:
    """The generated pairs per split, their record info and each pair's word alignment
    (target word first, as in :data:`~phrases.Links`)."""
    languages = (data.source_lang, data.target_lang)
    if languages not in (("en", "de"), ("de", "en")):
        raise UserError(
            "the embedded corpus is English-German: task.data.source_lang/target_lang must be "
            f"en/de or de/en, got {languages[0]}/{languages[1]}"
        )
    sizes = {"train": data.train_size, "val": data.val_size, "test": data.test_size}
    params = {
        "seed": data.seed,
        "sentences": {
            split: sum(data.document_sizes(split, size)) for split, size in sizes.items()
        },
        "max_number": data.max_number,
        "version": GENERATOR_VERSION,
    }

    def build() -> dict:
        generator = SentenceGenerator(load_lexicon(), data.max_number)
        splits, seen = {}, set()
        for split in ("test", "val", "train"):  # evaluation splits first; train avoids them
            rng = random.Random(f"{data.seed}/{split}")
            rows: list[tuple[str, str, Links]] = []
            while len(rows) < params["sentences"][split]:
                row = generator.aligned_sentence(rng)
                if row[1] not in seen:  # German identifies the sentence across English variants
                    seen.add(row[1])
                    rows.append(row)
            splits[split] = rows
        return splits

    raw, checksum = cached_json("translation", params, build)
    splits = {split: [(en, de) for en, de, _ in raw[split]] for split in SPLITS}
    links = {split: [[tuple(link) for link in row[2]] for row in raw[split]] for split in SPLITS}
    if languages == ("de", "en"):
        splits = {split: [(de, en) for en, de in pairs] for split, pairs in splits.items()}
        links = {
            split: [[(c, d, a, b) for a, b, c, d in row] for row in rows]
            for split, rows in links.items()
        }
    info = {"source": "embedded", "params": params, "checksum": checksum}
    return splits, info, links


def grouped(items: Sequence, sizes: int | Sequence[int]) -> list[Sequence]:
    """Consecutive ``items`` in groups of ``sizes`` each (the last may be shorter), or of
    ``sizes[i]`` for group ``i``, until the items run out."""
    if isinstance(sizes, int):
        sizes = itertools.repeat(sizes)
    groups, start = [], 0
    for size in sizes:
        if start >= len(items):
            break
        groups.append(items[start : start + size])
        start += size
    return groups


MARK_OPEN, MARK_CLOSE = "[ ", " ]"  # around the marked sentence of a document's source


def marked_sentences(pairs: list[Pair], sizes: int | Sequence[int], seed: str) -> list[int]:
    """For each document of :func:`grouped` ``pairs``, the index of its marked sentence
    (drawn, seeded by ``seed``)."""
    rng = random.Random(seed)
    return [rng.randrange(len(group)) for group in grouped(pairs, sizes)]


def documents(
    pairs: list[Pair], sizes: int | Sequence[int], marked: Sequence[int] | None = None
) -> list[Pair]:
    """Consecutive sentences joined into examples (:func:`grouped` by ``sizes``). With
    ``marked`` (a sentence index per document), that sentence stands between the marks in
    the source and the target is its translation alone."""
    docs = []
    for i, group in enumerate(grouped(pairs, sizes)):
        if marked is None:
            docs.append((" ".join(s for s, _ in group), " ".join(t for _, t in group)))
            continue
        sources = [
            MARK_OPEN + s + MARK_CLOSE if j == marked[i] else s for j, (s, _) in enumerate(group)
        ]
        docs.append((" ".join(sources), group[marked[i]][1]))
    return docs


def document_links(
    pairs: list[Pair],
    links: list[Links],
    sizes: int | Sequence[int],
    marked: Sequence[int] | None = None,
) -> list[Links]:
    """The word alignments of :func:`documents`: each sentence's spans shifted by where the
    sentence starts in the joined source and target (with ``marked``, the marked
    sentence's alone)."""
    joined = []
    for i, group in enumerate(grouped(list(zip(pairs, links, strict=True)), sizes)):
        shifted: Links = []
        source_at = target_at = 0
        for j, ((source, target), sentence) in enumerate(group):
            mark = marked is not None and j == marked[i]
            if mark:
                source_at += len(MARK_OPEN)
            if marked is None or mark:
                shifted += [
                    (a + target_at, b + target_at, c + source_at, d + source_at)
                    for a, b, c, d in sentence
                ]
                target_at += len(target) + 1
            source_at += len(source) + 1 + (len(MARK_CLOSE) if mark else 0)
        joined.append(shifted)
    return joined


def build_translation(options: TranslationOptions) -> Task:
    splits, info, links = load_aligned_pairs(options.data)
    for split, pairs in splits.items():
        if not pairs:
            raise UserError(f"the {split} split has no sentence pairs")
    if "checksum" not in info:
        info["checksum"] = corpus_checksum(splits)
    data = options.data
    texts = (text for pair in splits["train"] for text in pair)
    data_key = info["checksum"]
    if data.translate == "marked":  # the marks are pieces of the vocabulary
        texts, data_key = itertools.chain(texts, [MARK_OPEN + MARK_CLOSE]), f"{data_key}/marked"
        info["translate"] = "marked"
    model_path = train_subword_model(texts, options.vocab_size, data_key)
    tokenizer = SubwordTokenizer(model_path)
    sizes = {s: data.document_sizes(s, len(p)) for s, p in splits.items()}
    marked = {
        s: marked_sentences(p, sizes[s], f"{data.seed}/{s}/marked")
        if data.translate == "marked"
        else None
        for s, p in splits.items()
    }
    examples = {s: documents(p, sizes[s], marked[s]) for s, p in splits.items()}
    encoded = {
        s: EncodedPairs(
            ex,
            tokenizer,
            options.max_source_tokens,
            options.max_target_tokens,
            document_links(splits[s], links[s], sizes[s], marked[s]) if links else None,
        )
        for s, ex in examples.items()
    }
    datamodule = options.datamodule(encoded, partial(collate_pairs, pad_id=tokenizer.pad_id))
    info |= {
        "sizes": {s: len(ex) for s, ex in examples.items()},
        "vocab_size": tokenizer.vocab_size,
        "languages": [options.data.source_lang, options.data.target_lang],
    }
    test = encoded["test"].items
    warnings = [
        *truncation_warnings(
            "task.max_source_tokens",
            options.max_source_tokens,
            {split: pairs.source_lengths for split, pairs in encoded.items()},
            "sources",
        ),
        *truncation_warnings(
            "task.max_target_tokens",
            options.max_target_tokens,
            {split: pairs.target_lengths for split, pairs in encoded.items()},
            "targets",
        ),
    ]
    target_length = max(len(target) for _, target, *_ in test)
    return Task(
        datamodule=datamodule,
        tokenizer=tokenizer,
        frontend=lambda d_model, embedding: TokenFrontend(embedding, tokenizer.pad_id),
        metrics=translation_metrics,
        primary_metric="bleu",
        higher_is_better=True,
        source_length=max(len(source) for source, *_ in test),
        target_length=target_length,
        max_new_tokens=min(target_length + target_length // 4, options.max_target_tokens + 1),
        data_info=info,
        example_statistics=TRANSLATION_STATISTICS,
        artifacts={"subword.model": model_path},
        data_warnings=warnings,
    )


def corpus_checksum(splits: dict[str, list[Pair]]) -> str:
    """sha256 of real data as loaded: the revision recorded in the run and the tokenizer key."""
    return hashlib.sha256(json.dumps(splits, ensure_ascii=False).encode()).hexdigest()


@xbench.hookimpl
def xbench_register_tasks(register):
    register(
        TaskSpec(
            name="translation",
            modality="text",
            build=build_translation,
            options=TranslationOptions,
            description="Machine translation (English → German by default), scored by BLEU.",
        )
    )

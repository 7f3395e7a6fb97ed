"""Each built-in task's ``batch["alignment"]`` points at the source positions its target
tokens depend on, and real data without alignments carries none."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from xbench.taskkit.data import alignment_matrix
from xbench_tasks.captioning import CaptionDataOptions, CaptioningOptions, build_captioning
from xbench_tasks.captioning.render import RGB
from xbench_tasks.captioning.scenes import SIZES
from xbench_tasks.qa import QADataOptions, QAOptions, build_qa
from xbench_tasks.qa.data import EncodedQA, collate_qa
from xbench_tasks.qa.examples import QAExample
from xbench_tasks.speech_to_text import SpeechDataOptions, SpeechOptions, build_speech
from xbench_tasks.speech_to_text.data import encoder_span
from xbench_tasks.translation import (
    TranslationDataOptions,
    TranslationOptions,
    build_translation,
)
from xbench_tasks.translation.grammar import SentenceGenerator
from xbench_tasks.translation.lexicon import load_lexicon


def _rows(batch: dict, b: int) -> list[tuple[int, list[int]]]:
    """(target row, aligned source columns) of example ``b``'s known rows."""
    alignment = batch["alignment"][b]
    return [(t, alignment[t].nonzero().flatten().tolist()) for t in range(alignment.shape[0])]


def test_alignment_matrix_keeps_rows_columns_and_unknowns():
    links = [[[0, 2], [], [9]], None]
    out = alignment_matrix(links, rows=4, keys=3)
    assert out.shape == (2, 4, 3) and out.dtype == torch.bool
    assert out[0, 0].tolist() == [True, False, True]
    assert not out[0, 1:].any() and not out[1].any()  # unknown, past keys, padding rows
    assert alignment_matrix([None, None], 4, 3) is None


@pytest.mark.parametrize("two_hop", [0.0, 1.0])
def test_qa_aligned_context_tokens_decode_to_the_answer(two_hop):
    data = QADataOptions(train_size=64, val_size=8, test_size=16, two_hop=two_hop)
    task = build_qa(QAOptions(data=data))
    batch = next(iter(task.datamodule.test_dataloader()))
    for b, references in enumerate(batch["references"]):
        answer = (batch["target"][b] != task.tokenizer.pad_id).sum().item() - 2
        rows = _rows(batch, b)
        assert all(len(columns) == 1 for _, columns in rows[:answer])  # one copy per token
        assert all(not columns for _, columns in rows[answer:])  # EOS and padding: unknown
        columns = [c[0] for _, c in rows[:answer]]
        assert columns == list(range(columns[0], columns[0] + answer))  # one span
        copied = batch["source"][b, columns].tolist()
        assert copied == task.tokenizer.encode(references[0])  # the answer's words, in order
        assert copied == batch["target"][b, 1 : 1 + answer].tolist()


def test_qa_answer_start_picks_the_stating_fact_among_repeats():
    context = "anna lives in oslo . ben works for nord bank . nord bank is based in oslo ."
    example = QAExample("x", context, "where is the employer of ben based ?", ("oslo",), 70)
    tokenizer_texts = [context, example.question]
    from xbench.taskkit.text import WordTokenizer

    tokenizer = WordTokenizer.from_texts(tokenizer_texts)
    batch = collate_qa(list(EncodedQA([example], tokenizer, 100, 4)), tokenizer.pad_id)
    assert _rows(batch, 0)[0][1] == [len(context[:70].split())]
    truncated = collate_qa(list(EncodedQA([example], tokenizer, 10, 4)), tokenizer.pad_id)
    assert not truncated["alignment"].any()  # the answer was cut out of the context


def test_qa_without_answer_offsets_has_no_alignment():
    from xbench.taskkit.text import WordTokenizer

    example = QAExample("x", "a b c", "a ?", ("b",))
    tokenizer = WordTokenizer.from_texts(["a b c"])
    batch = collate_qa(list(EncodedQA([example], tokenizer, 10, 4)), tokenizer.pad_id)
    assert "alignment" not in batch


def test_translation_word_links_pair_dictionary_words_in_both_directions_of_many():
    generator = SentenceGenerator(load_lexicon(), 100)
    lexicon = load_lexicon()
    nouns = {}
    for noun in lexicon.nouns:  # every German form of a noun: oblique, dative plural
        for form in filter(None, (noun.de, noun.de_oblique)):
            nouns.setdefault(form, set()).add(noun.en)
        for form in filter(None, (noun.de_plural, noun.de_plural and noun.de_plural + "n")):
            nouns.setdefault(form, set()).add(noun.en_plural or noun.en)
    rng, checked, contractions, split_verbs = random.Random(3), 0, 0, 0
    # (a capitalised first word may be an adjective that spells like a noun: Junge)
    for _ in range(400):
        english, german, links = generator.aligned_sentence(rng)
        aligned: dict[tuple[int, int], set[str]] = {}
        for a, b, c, d in links:
            aligned.setdefault((a, b), set()).add(english[c:d].lower())
        for (a, b), words in aligned.items():
            word = german[a:b]
            if word in nouns and a > 0:  # a noun aligns with its dictionary translation
                assert any(set(en.split()) <= words for en in nouns[word]), (german, word)
                checked += 1
            if word.lower() == "im":  # many-to-one: im = in + the (or "in" of a time phrase)
                assert "in" in words, (german, english)
                contractions += "the" in words
        targets = {}
        for a, b, c, d in links:
            targets.setdefault((c, d), set()).add(german[a:b])
        split_verbs += any(len(g) > 1 for g in targets.values())  # one-to-many
    assert checked > 100 and contractions > 0 and split_verbs > 100


def test_translation_pieces_of_an_aligned_pair_point_at_their_words():
    options = TranslationOptions(
        data=TranslationDataOptions(train_size=300, val_size=20, test_size=20)
    )
    task = build_translation(options)
    batch = next(iter(task.datamodule.test_dataloader()))
    piece = task.tokenizer.processor.id_to_piece
    for b in range(batch["target"].shape[0]):
        targets = [piece(int(i)) for i in batch["target"][b, 1:]]
        rows = dict(_rows(batch, b))
        full_stop = targets.index(".")  # the last target piece before EOS
        source = [piece(int(i)) for i in batch["source"][b]]
        assert [source[c] for c in rows[full_stop]] == ["."]
        assert rows[targets.index("</s>")] == []  # EOS: unknown
        known = sum(bool(columns) for columns in rows.values())
        assert known >= 0.8 * full_stop  # nearly every German piece has an English source


def test_translation_alignment_follows_documents_and_reversed_direction():
    data = TranslationDataOptions(
        train_size=60,
        val_size=6,
        test_size=6,
        sentences_per_example=3,
        source_lang="de",
        target_lang="en",
    )
    task = build_translation(TranslationOptions(data=data))
    batch = next(iter(task.datamodule.test_dataloader()))
    piece = task.tokenizer.processor.id_to_piece
    for b in range(batch["target"].shape[0]):
        targets = [piece(int(i)) for i in batch["target"][b, 1:]]
        source = [piece(int(i)) for i in batch["source"][b]]
        rows = dict(_rows(batch, b))
        stops = [t for t, p in enumerate(targets) if p == "."]
        source_stops = [s for s, p in enumerate(source) if p == "."]
        assert len(stops) == 3  # each sentence's full stop aligns with its own
        assert [rows[t] for t in stops] == [[s] for s in source_stops]


def test_captioning_aligned_patches_lie_inside_the_named_objects_box():
    data = CaptionDataOptions(train_size=40, val_size=8, test_size=8, objects=3, grid=4)
    options = CaptioningOptions(data=data, image_size=48, patch_size=6)
    task = build_captioning(options)
    batch = next(iter(task.datamodule.test_dataloader()))
    vocabulary = task.tokenizer
    shapes = {"circle", "square", "triangle", "diamond"}
    cols = options.image_size // options.patch_size
    checked = 0
    for b in range(batch["target"].shape[0]):
        image = batch["source"]["pixels"][b].permute(1, 2, 0).numpy().astype(int)
        words = [vocabulary.decode([int(i)]) for i in batch["target"][b, 1:]]
        for t, columns in _rows(batch, b):
            if not columns:
                continue
            phrase_end = next(i for i in range(t, len(words)) if words[i] in shapes)
            colour = next(w for w in reversed(words[: phrase_end + 1]) if w in RGB)
            rows_at, cols_at = np.divmod(np.array(columns), cols)
            ys, xs = rows_at * options.patch_size, cols_at * options.patch_size
            # inside one object's box: no wider than the largest object plus a patch
            extent = 2 * SIZES["large"] * options.image_size / data.grid + options.patch_size
            assert ys.max() - ys.min() <= extent and xs.max() - xs.min() <= extent
            for y, x in zip(ys, xs, strict=True):  # each patch shows the named colour
                patch = image[y : y + options.patch_size, x : x + options.patch_size]
                distance = np.abs(patch - np.array(RGB[colour])).max(axis=2)
                assert distance.min() < 40, (colour, y, x)
            checked += 1
    assert checked > 20


def test_speech_encoder_span_follows_the_subsampling():
    assert encoder_span(8, 16, 2, 100) == [2, 3]
    assert encoder_span(9, 10, 2, 100) == [2]  # no centre inside: the nearest position
    assert encoder_span(8, 16, 2, 3) == [2]  # clipped to the utterance


def test_speech_aligned_frames_hold_each_spoken_word():
    data = SpeechDataOptions(train_size=12, val_size=4, test_size=8, words_min=2, words_max=4)
    task = build_speech(SpeechOptions(data=data, units="char"))
    step = 2 ** SpeechOptions().subsampling
    onsets, everything, voiced, words = [], [], 0, 0
    for batch in task.datamodule.test_dataloader():
        frames, lengths = batch["source"]
        for b, (reference,) in enumerate(batch["references"]):
            energy = frames[b, : lengths[b]].float().mean(-1)
            coarse = energy[: len(energy) // step * step].view(-1, step).mean(-1)
            spans, previous = [], None
            for _, columns in _rows(batch, b):
                if columns and columns != previous:
                    spans.append(columns)
                previous = columns if columns else previous
            assert len(spans) == len(reference.split())  # one span per word, spaces unknown
            flat = [c for span in spans for c in span]
            assert flat == list(range(flat[0], flat[-1] + 1))  # in order, back to back
            for span in spans:  # a span holds speech louder than the utterance's median
                kept = [c for c in span if c < len(coarse)]
                voiced += float(coarse[kept].max()) > float(coarse.median())
                words += 1
            onsets += [float(coarse[span[0]]) for span in spans[1:] if span[0] < len(coarse)]
            everything += coarse.tolist()
    assert voiced >= 0.9 * words and words > 10
    assert np.mean(onsets) < np.mean(everything)  # words start in the quiet between words

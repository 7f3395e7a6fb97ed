"""The embedded corpus: spoken word sequences synthesized offline with eSpeak NG.

Each utterance is a random sequence of words from a small closed vocabulary (digits,
colours, directions, commands) — the TIDIGITS recipe with more words. Voices (English
accents × eSpeak voice variants), speaking rate and pitch vary per utterance; white noise
is added at ``snr_db``; audio is resampled from eSpeak's 22.05 kHz to 16 kHz. Everything
follows from the seed; splits never share a transcript. Features are cached with a
checksum, so synthesis runs once per parameter set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from xbench_tasks.speech_to_text.audio import HOP, SAMPLE_RATE, log_mel, to_16k
from xbench_tasks.speech_to_text.espeak import Utterance, synthesize_timed
from xbench_tasks.speech_to_text.store import cached_arrays

CORPUS_VERSION = 2
SPLITS = ("train", "val", "test")
WORDS = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    *("red", "green", "blue", "yellow", "black", "white"),
    *("up", "down", "left", "right", "stop", "go", "yes", "no"),
)
ACCENTS = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029")
VARIANTS = ("m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "klatt", "Alex", "steph")
RATES = (130, 200)  # words per minute
PITCHES = (25, 75)  # eSpeak's 0-100 scale


@dataclass(frozen=True)
class CorpusSpec:
    """Everything the embedded corpus depends on (its cache key)."""

    seed: int
    sizes: tuple[int, int, int]  # train, val, test
    words_min: int
    words_max: int
    snr_db: float
    n_mels: int


def utterances(spec: CorpusSpec) -> dict[str, list[Utterance]]:
    """Synthesis requests per split; evaluation splits are drawn first and the training
    split avoids their transcripts."""
    rng = np.random.default_rng(spec.seed)
    seen: set[str] = set()
    out: dict[str, list[Utterance]] = {}
    for split, size in sorted(zip(SPLITS, spec.sizes, strict=True), key=lambda s: s[0] == "train"):
        rows: list[Utterance] = []
        while len(rows) < size:
            count = int(rng.integers(spec.words_min, spec.words_max + 1))
            text = " ".join(WORDS[i] for i in rng.integers(len(WORDS), size=count))
            voice = f"{ACCENTS[rng.integers(len(ACCENTS))]}+{VARIANTS[rng.integers(len(VARIANTS))]}"
            rate, pitch = int(rng.integers(*RATES)), int(rng.integers(*PITCHES))
            if text not in seen:
                seen.add(text)
                rows.append({"text": text, "voice": voice, "rate": rate, "pitch": pitch})
        out[split] = rows
    return out


def _noisy(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    power = float(np.mean(wave**2)) or 1e-10
    return wave + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), wave.shape)


def word_frames(onsets_ms: np.ndarray, frames: int, words: int) -> np.ndarray:
    """(words, 2) [start, end) feature frames of each word: from its onset to the next
    word's (the last to the end); empty (0, 2) when eSpeak's word events do not match the
    transcript's word count."""
    if len(onsets_ms) != words:
        return np.zeros((0, 2), dtype=np.int64)
    starts = np.minimum(np.asarray(onsets_ms) * SAMPLE_RATE // (1000 * HOP), frames)
    return np.stack([starts, np.append(starts[1:], frames)], axis=1).astype(np.int64)


def build_features(spec: CorpusSpec) -> dict[str, np.ndarray]:
    """Synthesize every split and turn it into features: per split, the frames of all
    utterances concatenated, their offsets, their transcripts and every word's frames
    (:func:`word_frames`, from the synthesis) with their offsets."""
    requests = utterances(spec)
    flat = [r for split in SPLITS for r in requests[split]]
    waves, onsets, rate = synthesize_timed(flat)
    rng = np.random.default_rng([spec.seed, 1])
    features = [
        log_mel(_noisy(to_16k(w.astype(np.float32) / 32768.0, rate), spec.snr_db, rng), spec.n_mels)
        for w in waves
    ]
    words = [
        word_frames(o, len(f), len(r["text"].split()))
        for o, f, r in zip(onsets, features, flat, strict=True)
    ]
    arrays, start = {}, 0
    for split in SPLITS:
        chunk = features[start : start + len(requests[split])]
        spans = words[start : start + len(chunk)]
        start += len(chunk)
        arrays[f"{split}_words"] = np.concatenate(spans)
        arrays[f"{split}_word_offsets"] = np.cumsum([0] + [len(w) for w in spans])
        arrays[f"{split}_frames"] = np.concatenate(chunk).astype(np.float16)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(f) for f in chunk])
        arrays[f"{split}_texts"] = np.array([r["text"] for r in requests[split]])
    return arrays


def load_corpus(
    spec: CorpusSpec,
) -> tuple[dict[str, list[tuple[np.ndarray, str, np.ndarray]]], str]:
    """(features, transcript, word frames) per split, from the cache or freshly built, and
    the checksum of the cached file."""
    params = {**asdict(spec), "version": CORPUS_VERSION}
    arrays, checksum = cached_arrays("speech_to_text", params, lambda: build_features(spec))
    splits = {}
    for split in SPLITS:
        frames, offsets = arrays[f"{split}_frames"], arrays[f"{split}_offsets"]
        words, word_offsets = arrays[f"{split}_words"], arrays[f"{split}_word_offsets"]
        rows = zip(offsets[:-1], offsets[1:], arrays[f"{split}_texts"], strict=True)
        spans = zip(word_offsets[:-1], word_offsets[1:], strict=True)
        splits[split] = [
            (frames[a:b], str(text), words[c:d])
            for (a, b, text), (c, d) in zip(rows, spans, strict=True)
        ]
    return splits, checksum

"""The embedded corpus: spoken word sequences synthesized offline with eSpeak NG.

Each utterance is a random sequence of words from a small closed vocabulary (digits,
colours, directions, commands) — the TIDIGITS recipe with more words. Voices (English
accents × eSpeak voice variants), speaking rate and pitch vary per utterance; white noise
is added at ``snr_db``; audio is resampled from eSpeak's 22.05 kHz to 16 kHz and kept as
int16. Everything follows from the seed; splits never share a transcript. Features are
cached with a checksum, so synthesis runs once per parameter set; the evaluation splits'
audio (for models with their own feature extractor) is cached beside them in a second
file, read only when asked for, so building the task reads no audio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from xbench_tasks.speech_to_text.audio import (
    HOP,
    SAMPLE_RATE,
    log_mel,
    pcm16,
    pcm16_to_float,
    to_16k,
)
from xbench_tasks.speech_to_text.espeak import Utterance, synthesize_timed
from xbench_tasks.speech_to_text.store import cached_arrays

CORPUS_VERSION = 3
SPLITS = ("train", "val", "test")
AUDIO_SPLITS = ("val", "test")  # the splits whose audio is kept
Waveforms = Callable[[str], list[np.ndarray]]
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


def build_corpus(spec: CorpusSpec) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Synthesize every split: its features and, for :data:`AUDIO_SPLITS`, its int16 audio
    (the features are computed from that very audio). Features per split: the frames of
    all utterances concatenated, their offsets, their transcripts and every word's frames
    (:func:`word_frames`, from the synthesis) with their offsets; audio: the samples of
    all utterances concatenated and their offsets."""
    requests = utterances(spec)
    flat = [r for split in SPLITS for r in requests[split]]
    waves, onsets, rate = synthesize_timed(flat)
    rng = np.random.default_rng([spec.seed, 1])
    audio = [
        pcm16(_noisy(to_16k(w.astype(np.float32) / 32768.0, rate), spec.snr_db, rng)) for w in waves
    ]
    features = [log_mel(pcm16_to_float(a), spec.n_mels) for a in audio]
    words = [
        word_frames(o, len(f), len(r["text"].split()))
        for o, f, r in zip(onsets, features, flat, strict=True)
    ]
    arrays, sound, start = {}, {}, 0
    for split in SPLITS:
        chunk = features[start : start + len(requests[split])]
        spans = words[start : start + len(chunk)]
        if split in AUDIO_SPLITS:
            samples = audio[start : start + len(chunk)]
            sound[f"{split}_audio"] = np.concatenate(samples)
            sound[f"{split}_audio_offsets"] = np.cumsum([0] + [len(a) for a in samples])
        start += len(chunk)
        arrays[f"{split}_words"] = np.concatenate(spans)
        arrays[f"{split}_word_offsets"] = np.cumsum([0] + [len(w) for w in spans])
        arrays[f"{split}_frames"] = np.concatenate(chunk).astype(np.float16)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(f) for f in chunk])
        arrays[f"{split}_texts"] = np.array([r["text"] for r in requests[split]])
    return arrays, sound


def load_corpus(
    spec: CorpusSpec,
) -> tuple[dict[str, list[tuple[np.ndarray, str, np.ndarray]]], str, Waveforms]:
    """(features, transcript, word frames) per split, from the cache or freshly built; the
    checksum of the cached features file; and the evaluation splits' audio per utterance
    (``waveforms(split)``, float32 at 16 kHz, read from its own cache file when called)."""
    params = {**asdict(spec), "version": CORPUS_VERSION}
    built: list[tuple[dict, dict]] = []

    def build(part: int) -> dict[str, np.ndarray]:
        if not built:
            built.append(build_corpus(spec))
        return built[0][part]

    arrays, checksum = cached_arrays("speech_to_text", params, lambda: build(0))
    audio_params = {**params, "part": "audio"}
    if built:  # synthesized just now: store the audio too, so no later call synthesizes
        cached_arrays("speech_to_text", audio_params, lambda: build(1))
        built.clear()

    def waveforms(split: str) -> list[np.ndarray]:
        if split not in AUDIO_SPLITS:
            raise KeyError(f"the corpus keeps the audio of {' and '.join(AUDIO_SPLITS)}: {split!r}")
        sound, _ = cached_arrays("speech_to_text", audio_params, lambda: build(1))
        samples, offsets = sound[f"{split}_audio"], sound[f"{split}_audio_offsets"]
        bounds = zip(offsets[:-1], offsets[1:], strict=True)
        return [pcm16_to_float(samples[a:b]) for a, b in bounds]

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
    return splits, checksum, waveforms

"""``speech_to_text``: a small Whisper-like recognizer; the decoder writes the transcript
while its cross-attention reads the audio frames.

Data: an embedded corpus synthesized offline with eSpeak NG (default; seeded, cached with
a checksum), a local folder of WAV/FLAC files with a transcript file, or an HF
``datasets`` audio dataset.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

import xbench
from xbench.api.errors import UserError
from xbench.api.options import option
from xbench.api.task import Task, TaskSpec
from xbench.taskkit.hf import HFSourceOptions
from xbench.taskkit.lengths import LENGTH_LAWS, drawn_lengths
from xbench.taskkit.options import LoaderOptions, SplitOptions, data_source, with_default
from xbench.taskkit.text import WordTokenizer
from xbench.taskkit.truncation import truncation_warnings
from xbench_tasks.speech_to_text.audio import joined_waveforms
from xbench_tasks.speech_to_text.corpus import SPLITS, CorpusSpec, load_corpus
from xbench_tasks.speech_to_text.data import EncodedSpeech, collate
from xbench_tasks.speech_to_text.frontend import ConvSubsampling, subsampled_lengths
from xbench_tasks.speech_to_text.metrics import SPEECH_STATISTICS, speech_metrics
from xbench_tasks.speech_to_text.text import CharTokenizer, normalise


@dataclass
class SpeechDataOptions(SplitOptions, HFSourceOptions):
    source: str = data_source("folder", "hf")
    # embedded corpus
    words_min: int = option(3, help="fewest words per utterance (~0.4 s each)", min=1, max=400)
    words_max: int = option(6, help="most words per utterance (~0.4 s each)", min=1, max=400)
    snr_db: float = option(20.0, help="signal-to-noise ratio of the added white noise", min=-10.0)
    utterances_per_example: int = option(
        1, help="consecutive utterances joined into one example (audio length)", min=1, max=500
    )
    train_utterances_per_example: int = option(
        0,
        help="training examples' utterances, for a length curriculum (train short, evaluate "
        "at utterances_per_example); 0: utterances_per_example",
        min=0,
        max=500,
    )
    transcribe: str = option(
        "all",
        help="all (every utterance of an example) | marked (only the one utterance under a "
        "pilot tone in the top mel bands: found anywhere in the audio, then read in order)",
        choices=("all", "marked"),
    )
    train_lengths: str = option(
        "fixed",
        help="training examples' utterances: fixed (that many consecutive ones) | uniform | "
        "loguniform (1 … that many, drawn from train_size utterances, seeded; short ones find "
        "the alignment, long ones teach long audio; no extra synthesis)",
        choices=LENGTH_LAWS,
    )
    train_size: int = with_default(SplitOptions, "train_size", 3000)
    val_size: int = with_default(SplitOptions, "val_size", 100)
    test_size: int = with_default(SplitOptions, "test_size", 300)

    def utterances_in(self, split: str) -> int:
        """Utterances per example of ``split`` (the curriculum's for training)."""
        if split == "train" and self.train_utterances_per_example:
            return self.train_utterances_per_example
        return self.utterances_per_example

    def synthesized(self, split: str, size: int) -> int:
        """Utterances the corpus speaks for ``size`` examples of ``split``."""
        drawn = split == "train" and self.train_lengths != "fixed"
        return size if drawn else size * self.utterances_in(split)

    # real data
    path: str | None = option(None, help="folder: the folder holding the audio files")
    transcript: str = option(
        "transcript.csv", help="folder: transcript file in the folder (CSV, or TSV by suffix)"
    )
    val_fraction: float = option(
        0.1, help="folder without split column: validation share", min=0.0, max=0.5
    )
    test_fraction: float = option(
        0.1, help="folder without split column: test share", min=0.0, max=0.5
    )
    hf_audio_column: str = option("audio", help="hf: audio column")
    hf_text_column: str = option("text", help="hf: transcript column")
    resample: bool = option(False, help="convert audio that is not 16 kHz (else it is an error)")
    skip_bad_files: bool = option(False, help="leave out bad audio with a warning (else stop)")


@dataclass
class SpeechOptions(LoaderOptions):
    data: SpeechDataOptions = field(default_factory=SpeechDataOptions)
    units: str = option("word", help="target tokens: word | char", choices=("word", "char"))
    n_mels: int = option(40, help="mel bands of the log-mel features", min=8, max=256)
    subsampling: int = option(2, help="stride-2 conv layers (frame rate / 2**n)", min=1, max=5)
    batch_size: int = with_default(LoaderOptions, "batch_size", 32)
    eval_batch_size: int = with_default(LoaderOptions, "eval_batch_size", 100)
    max_target_tokens: int = with_default(LoaderOptions, "max_target_tokens", 1000)


def load_splits(options: SpeechOptions) -> tuple[dict, dict, Callable | None]:
    """(features, transcript) examples per split, what identifies their source, and the
    evaluation splits' audio per example (``Task.waveforms``; None when no audio carries
    what the features do)."""
    data = options.data
    if data.source == "embedded":
        if data.words_min > data.words_max:
            raise UserError(
                f"task.data.words_min={data.words_min} exceeds task.data.words_max={data.words_max}"
            )
        sizes = (data.train_size, data.val_size, data.test_size)
        spec = CorpusSpec(
            data.seed,
            tuple(data.synthesized(s, size) for s, size in zip(SPLITS, sizes, strict=True)),
            data.words_min,
            data.words_max,
            data.snr_db,
            options.n_mels,
        )
        utterances, checksum, audio = load_corpus(spec)
        marked = data.transcribe == "marked"

        def marks(split: str) -> random.Random | None:
            return random.Random(f"{data.seed}/{split}/marked") if marked else None

        splits = {s: joined(u, data.utterances_in(s), marks(s)) for s, u in utterances.items()}
        if data.train_lengths != "fixed":
            sizes = drawn_lengths(
                data.train_lengths,
                data.utterances_in("train"),
                data.train_size,
                f"{data.seed}/train/lengths",
            )
            splits["train"] = drawn(utterances["train"], sizes, data.seed, marks("train"))
        info = {"source": "embedded", "params": spec.__dict__, "checksum": checksum}
        if marked:
            info["transcribe"] = "marked"
        if any(data.utterances_in(s) > 1 for s in SPLITS):
            info["utterances_per_example"] = {s: data.utterances_in(s) for s in SPLITS}
        if marked:  # the pilot tone lives in the features, not in the audio
            return splits, info, None
        return splits, info, lambda s: joined_waveforms(audio(s), data.utterances_in(s))
    from xbench_tasks.speech_to_text import real

    if data.source == "folder":
        if not data.path:
            raise UserError("task.data.source=folder needs task.data.path (a folder of WAV/FLAC)")
        splits, waveforms = real.load_folder(
            data.path,
            data.transcript,
            options.n_mels,
            data.resample,
            data.skip_bad_files,
            (data.val_fraction, data.test_fraction),
            data.seed,
        )
        info = {"source": "folder", "path": data.path, "transcript": data.transcript}
        return splits, info, waveforms
    splits, waveforms = real.load_hf(data, options.n_mels)
    return splits, {"source": "hf", "name": data.hf_name, "config": data.hf_config}, waveforms


PILOT_BANDS = 4  # top mel bands the pilot tone of a marked utterance fills
PILOT_LEVEL = 4.0  # its level, in the per-band normalised units of the features


def with_pilot(frames: np.ndarray) -> np.ndarray:
    """A copy of (T, n_mels) ``frames`` under a steady high tone: the top bands loud."""
    toned = frames.copy()
    toned[:, -PILOT_BANDS:] = PILOT_LEVEL
    return toned


def joined(
    utterances: list[tuple], per_example: int, marks: random.Random | None = None
) -> list[tuple]:
    """Consecutive utterances joined into examples of ``per_example``: frames one after
    the other (each utterance keeps its own normalisation), transcripts space-separated.
    Items are ``(frames, transcript, *spans)``; any spans ((n, 2) frame ranges, such as the
    frames of each word) are shifted to where their utterance starts in the example.
    With ``marks``, one utterance per example (drawn from it) carries the pilot tone, and
    the transcript and spans are that utterance's alone."""
    if per_example == 1 and marks is None:
        return utterances
    examples = []
    for i in range(0, len(utterances), per_example):
        group = utterances[i : i + per_example]
        starts = np.cumsum([0] + [len(frames) for frames, *_ in group[:-1]])
        chosen = range(len(group)) if marks is None else [marks.randrange(len(group))]
        spans = [
            np.concatenate([group[j][k] + starts[j] for j in chosen])
            for k in range(2, len(group[0]))
        ]
        frames = [
            with_pilot(f) if marks is not None and j in chosen else f
            for j, (f, *_) in enumerate(group)
        ]
        text = " ".join(group[j][1] for j in chosen)
        examples.append((np.concatenate(frames), text, *spans))
    return examples


def drawn(
    utterances: list[tuple], sizes: list[int], seed: int, marks: random.Random | None = None
) -> list[tuple]:
    """One example per entry of ``sizes``: :func:`joined` from that many distinct
    ``utterances`` (at most all of them), drawn at random (seeded), marked as there."""
    rng = random.Random(f"{seed}/train/draws")
    return [
        joined(group, len(group), marks)[0]
        for group in (rng.sample(utterances, min(size, len(utterances))) for size in sizes)
    ]


def build_speech(options: SpeechOptions) -> Task:
    splits, info, waveforms = load_splits(options)
    texts = [normalise(text) for _, text, *_ in splits["train"]]
    tokenizer = (
        WordTokenizer.from_texts(texts)
        if options.units == "word"
        else CharTokenizer.from_texts(texts)
    )
    encoded = {
        s: EncodedSpeech(ex, tokenizer, options.max_target_tokens, options.subsampling)
        for s, ex in splits.items()
    }
    datamodule = options.datamodule(
        encoded, partial(collate, pad_id=tokenizer.pad_id, layers=options.subsampling)
    )
    frames = max(len(f) for split in splits.values() for f, *_ in split)
    target_length = max(len(ids) for _, ids, *_ in encoded["test"].items)
    info |= {
        "sizes": {s: len(ex) for s, ex in splits.items()},
        "vocab_size": tokenizer.vocab_size,
        "units": options.units,
        "max_feature_frames": frames,
    }
    return Task(
        datamodule=datamodule,
        tokenizer=tokenizer,
        frontend=lambda d_model, embedding: ConvSubsampling(
            options.n_mels, d_model, options.subsampling
        ),
        metrics=speech_metrics,
        primary_metric="wer",
        higher_is_better=False,
        source_length=int(subsampled_lengths(torch.tensor(frames), options.subsampling)),
        target_length=target_length,
        max_new_tokens=max(len(ids) for split in encoded.values() for _, ids, *_ in split.items),
        data_info=info,
        data_warnings=truncation_warnings(
            "task.max_target_tokens",
            options.max_target_tokens,
            {split: items.target_lengths for split, items in encoded.items()},
            "transcripts",
        ),
        example_statistics=SPEECH_STATISTICS,
        waveforms=waveforms,
    )


@xbench.hookimpl
def xbench_register_tasks(register):
    register(
        TaskSpec(
            name="speech_to_text",
            modality="audio",
            build=build_speech,
            options=SpeechOptions,
            description="Speech recognition: transcribe spoken word sequences (eSpeak NG).",
        )
    )

"""``speech_to_text``: a small Whisper-like recognizer; the decoder writes the transcript
while its cross-attention reads the audio frames.

Data: an embedded corpus synthesized offline with eSpeak NG (default; seeded, cached with
a checksum), a local folder of WAV/FLAC files with a transcript file, or an HF
``datasets`` audio dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import torch

import xbench
from xbench.api.errors import UserError
from xbench.api.options import option
from xbench.api.task import Task, TaskSpec
from xbench.taskkit.data import SplitDataModule
from xbench.taskkit.text import WordTokenizer
from xbench_tasks.speech_to_text.corpus import CorpusSpec, load_corpus
from xbench_tasks.speech_to_text.data import EncodedSpeech, collate
from xbench_tasks.speech_to_text.frontend import ConvSubsampling, subsampled_lengths
from xbench_tasks.speech_to_text.metrics import speech_metrics
from xbench_tasks.speech_to_text.text import CharTokenizer, normalise


@dataclass
class SpeechDataOptions:
    source: str = option(
        "embedded", help="embedded | folder | hf", choices=("embedded", "folder", "hf")
    )
    # embedded corpus
    seed: int = option(1234, help="seed of the embedded corpus (and of folder splits)", min=0)
    words_min: int = option(3, help="fewest words per utterance (~0.4 s each)", min=1, max=400)
    words_max: int = option(6, help="most words per utterance (~0.4 s each)", min=1, max=400)
    snr_db: float = option(20.0, help="signal-to-noise ratio of the added white noise", min=-10.0)
    train_size: int = option(3000, help="embedded training utterances", min=1)
    val_size: int = option(100, help="embedded validation utterances", min=1)
    test_size: int = option(300, help="embedded test utterances", min=1)
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
    hf_name: str | None = option(None, help="hf: dataset name")
    hf_config: str | None = option(None, help="hf: dataset configuration")
    hf_train_split: str = option("train", help="hf: training split")
    hf_val_split: str = option("validation", help="hf: validation split")
    hf_test_split: str = option("test", help="hf: test split")
    audio_column: str = option("audio", help="hf: audio column")
    text_column: str = option("text", help="hf: transcript column")
    resample: bool = option(False, help="convert audio that is not 16 kHz (else it is an error)")
    skip_bad_files: bool = option(False, help="leave out bad audio with a warning (else stop)")


@dataclass
class SpeechOptions:
    data: SpeechDataOptions = field(default_factory=SpeechDataOptions)
    units: str = option("word", help="target tokens: word | char", choices=("word", "char"))
    n_mels: int = option(40, help="mel bands of the log-mel features", min=8, max=256)
    subsampling: int = option(2, help="stride-2 conv layers (frame rate / 2**n)", min=1, max=5)
    max_target_tokens: int = option(1000, help="longer transcripts are truncated", min=4)
    batch_size: int = option(32, help="training batch size", min=1)
    eval_batch_size: int = option(100, help="validation/test batch size", min=1)
    num_workers: int = option(0, help="DataLoader worker processes", min=0)


def load_splits(options: SpeechOptions) -> tuple[dict, dict]:
    """(features, transcript) examples per split and what identifies their source."""
    data = options.data
    if data.source == "embedded":
        if data.words_min > data.words_max:
            raise UserError(
                f"task.data.words_min={data.words_min} exceeds task.data.words_max={data.words_max}"
            )
        spec = CorpusSpec(
            data.seed,
            (data.train_size, data.val_size, data.test_size),
            data.words_min,
            data.words_max,
            data.snr_db,
            options.n_mels,
        )
        splits, checksum = load_corpus(spec)
        return splits, {"source": "embedded", "params": spec.__dict__, "checksum": checksum}
    from xbench_tasks.speech_to_text import real

    if data.source == "folder":
        if not data.path:
            raise UserError("task.data.source=folder needs task.data.path (a folder of WAV/FLAC)")
        splits = real.load_folder(
            data.path,
            data.transcript,
            options.n_mels,
            data.resample,
            data.skip_bad_files,
            (data.val_fraction, data.test_fraction),
            data.seed,
        )
        return splits, {"source": "folder", "path": data.path, "transcript": data.transcript}
    if not data.hf_name:
        raise UserError("task.data.source=hf needs task.data.hf_name")
    names = {"train": data.hf_train_split, "val": data.hf_val_split, "test": data.hf_test_split}
    splits = real.load_hf(
        data.hf_name,
        data.hf_config,
        names,
        data.audio_column,
        data.text_column,
        options.n_mels,
        data.resample,
        data.skip_bad_files,
    )
    return splits, {"source": "hf", "name": data.hf_name, "config": data.hf_config}


def build_speech(options: SpeechOptions) -> Task:
    splits, info = load_splits(options)
    texts = [normalise(text) for _, text in splits["train"]]
    tokenizer = (
        WordTokenizer.from_texts(texts)
        if options.units == "word"
        else CharTokenizer.from_texts(texts)
    )
    encoded = {
        s: EncodedSpeech(ex, tokenizer, options.max_target_tokens) for s, ex in splits.items()
    }
    datamodule = SplitDataModule(
        encoded,
        partial(collate, pad_id=tokenizer.pad_id),
        options.batch_size,
        options.eval_batch_size,
        options.num_workers,
    )
    frames = max(len(f) for split in splits.values() for f, _ in split)
    target_length = max(len(ids) for _, ids, _ in encoded["test"].items)
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
        max_new_tokens=max(len(ids) for split in encoded.values() for _, ids, _ in split.items),
        data_info=info,
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

"""The speech_to_text task: synthesis, features, frontend masking, loaders, metrics."""

from __future__ import annotations

import dataclasses
import io
import logging
import sys

import numpy as np
import pytest
import soundfile
import torch
from helpers import composed_config

from xbench.api.errors import UserError
from xbench.config.settings import ModelSettings
from xbench.registry import get_registry
from xbench.run.model import EncoderDecoder
from xbench.run.plan import plan_run
from xbench.run.runner import execute
from xbench.taskkit.cache import cache_path
from xbench_plugins.naive import NaiveAttention
from xbench_tasks.speech_to_text import SpeechDataOptions, SpeechOptions, build_speech
from xbench_tasks.speech_to_text.audio import SAMPLE_RATE, BadAudio, decode_audio, log_mel
from xbench_tasks.speech_to_text.corpus import (
    CORPUS_VERSION,
    WORDS,
    CorpusSpec,
    load_corpus,
    utterances,
)
from xbench_tasks.speech_to_text.espeak import synthesize
from xbench_tasks.speech_to_text.frontend import ConvSubsampling, subsampled_lengths
from xbench_tasks.speech_to_text.metrics import speech_metrics
from xbench_tasks.speech_to_text.real import RecordChecker, examples_of, hf_records, load_folder
from xbench_tasks.speech_to_text.text import CharTokenizer, normalise

TINY = CorpusSpec(seed=5, sizes=(12, 4, 4), words_min=2, words_max=4, snr_db=20.0, n_mels=20)


def test_synthesis_is_deterministic_and_follows_the_request():
    requests = [
        {"text": "three nine red", "voice": "en-us+f3", "rate": 160, "pitch": 40},
        {"text": "three nine red", "voice": "en-gb-x-rp+m1", "rate": 160, "pitch": 40},
        {"text": "three nine red", "voice": "en-us+f3", "rate": 120, "pitch": 40},
    ]
    first, rate = synthesize(requests)
    again, _ = synthesize(requests)
    assert rate == 22050
    assert all(
        a.dtype == np.int16 and np.array_equal(a, b) for a, b in zip(first, again, strict=True)
    )
    assert not np.array_equal(first[0][:5000], first[1][:5000])  # another voice
    assert len(first[2]) > 1.2 * len(first[0])  # slower speech is longer
    assert np.abs(first[0]).max() > 1000  # not silence


def test_an_unknown_voice_is_an_error():
    with pytest.raises(RuntimeError, match="no voice"):
        synthesize([{"text": "one", "voice": "xx-nowhere", "rate": 160, "pitch": 50}])


def test_corpus_splits_are_sized_disjoint_and_seeded():
    splits = utterances(TINY)
    assert {s: len(r) for s, r in splits.items()} == {"train": 12, "val": 4, "test": 4}
    texts = {s: {r["text"] for r in rows} for s, rows in splits.items()}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["val"]
    assert not texts["val"] & texts["test"]
    for rows in splits.values():
        for r in rows:
            words = r["text"].split()
            assert 2 <= len(words) <= 4 and set(words) <= set(WORDS)
    assert utterances(TINY) == splits
    assert utterances(CorpusSpec(6, *list(TINY.__dict__.values())[1:])) != splits


def _cached(spec: CorpusSpec, part: dict | None = None):
    params = {**dataclasses.asdict(spec), "version": CORPUS_VERSION, **(part or {})}
    return cache_path("speech_to_text", params, ".npz")


def test_corpus_is_cached_and_a_corrupt_cache_is_rebuilt(tmp_path):
    first, checksum, _ = load_corpus(TINY)
    path = _cached(TINY)
    assert sorted((tmp_path / "cache" / "speech_to_text").glob("*.npz")) == sorted(
        [path, _cached(TINY, {"part": "audio"})]
    )
    assert first["train"][0][0].shape[1] == TINY.n_mels and first["train"][0][0].shape[0] > 50
    path.write_bytes(path.read_bytes()[:-100])
    again, checksum_again, _ = load_corpus(TINY)
    assert checksum_again == checksum
    for split in first:
        for (a, text_a, words_a), (b, text_b, words_b) in zip(
            first[split], again[split], strict=True
        ):
            assert text_a == text_b and np.array_equal(a, b) and np.array_equal(words_a, words_b)


def test_the_corpus_keeps_the_evaluation_audio_its_features_came_from(tmp_path):
    splits, _, waveforms = load_corpus(TINY)
    for split in ("val", "test"):
        waves = waveforms(split)
        assert len(waves) == len(splits[split]) == 4
        for wave, (frames, _, _) in zip(waves, splits[split], strict=True):
            assert wave.dtype == np.float32 and np.abs(wave).max() <= 1.0
            assert len(frames) == 1 + len(wave) // 160  # 10 ms frames, centred windows
            expected = log_mel(wave, TINY.n_mels).astype(np.float16)
            assert np.allclose(expected.astype(np.float32), frames.astype(np.float32), atol=0.02)
    with pytest.raises(KeyError, match="'train'"):
        waveforms("train")


def test_corpus_audio_round_trips_the_cache_and_a_damaged_file_is_rebuilt(tmp_path):
    _, _, built = load_corpus(TINY)
    first = built("test")
    _, _, cached = load_corpus(TINY)  # the cache alone, nothing synthesized
    assert all(np.array_equal(a, b) for a, b in zip(first, cached("test"), strict=True))
    audio = _cached(TINY, {"part": "audio"})
    audio.write_bytes(b"not an npz")
    again = cached("test")  # the audio file alone is synthesized again, the same
    assert len(again) == len(first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_joined_examples_concatenate_their_utterances_audio():
    data = SpeechDataOptions(
        seed=5, train_size=4, val_size=1, test_size=2, words_min=2, words_max=3
    )
    task = build_speech(
        SpeechOptions(data=dataclasses.replace(data, utterances_per_example=3), n_mels=20)
    )
    spec = CorpusSpec(seed=5, sizes=(12, 3, 6), words_min=2, words_max=3, snr_db=20.0, n_mels=20)
    _, _, utterances_audio = load_corpus(spec)
    single = utterances_audio("test")
    joined = task.waveforms("test")
    items = task.datamodule.splits["test"].items
    assert len(joined) == len(items) == 2
    for i, (wave, (features, *_)) in enumerate(zip(joined, items, strict=True)):
        assert np.array_equal(wave, np.concatenate(single[3 * i : 3 * i + 3]))
        assert abs(len(features) - len(wave) / 160) <= 3  # one frame per utterance's edge


def test_log_mel_is_normalised_per_utterance():
    wave = np.sin(np.linspace(0, 2000, SAMPLE_RATE)).astype(np.float32)  # one second
    wave += np.random.default_rng(0).normal(0, 0.1, wave.shape).astype(np.float32)
    features = log_mel(wave, 40)
    assert features.shape == (101, 40)  # 100 frames per second, centred windows
    np.testing.assert_allclose(features.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(features.std(axis=0), 1, atol=1e-3)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_subsampled_lengths_match_the_convolutions(layers):
    frontend = ConvSubsampling(20, 16, layers)
    for frames in (1, 2, 7, 8, 9, 100, 257):
        x, mask = frontend((torch.randn(1, frames, 20), torch.tensor([frames])))
        assert x.shape[1] == int(subsampled_lengths(torch.tensor(frames), layers))
        assert bool(mask.all())


def _batch(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(f) for f in features])
    return torch.nn.utils.rnn.pad_sequence(features, batch_first=True), lengths


def test_padding_never_changes_an_utterances_outputs():
    """Through the frontend and the whole encoder-decoder: a short utterance gives the
    same outputs alone and batched with longer audio (padded with zeros or garbage)."""
    torch.manual_seed(0)
    config = ModelSettings(d_model=32, heads=2, encoder_layers=2, decoder_layers=1, ffn_dim=64)
    model = EncoderDecoder(
        config, 10, 0, lambda d, emb: ConvSubsampling(20, d, 2), NaiveAttention
    ).eval()
    short, long = torch.randn(37, 20), torch.randn(121, 20)
    target = torch.randint(4, 10, (1, 6))
    alone = model((short[None], torch.tensor([37])), target)
    frames, lengths = _batch([short, long])
    batched = model((frames, lengths), target.expand(2, -1))
    torch.testing.assert_close(batched[0], alone[0], atol=1e-5, rtol=1e-5)
    frames[0, 37:] = 1e3  # what lies beyond the length must not matter either
    garbage = model((frames, lengths), target.expand(2, -1))
    torch.testing.assert_close(garbage[0], alone[0], atol=1e-5, rtol=1e-5)
    _, mask = model.frontend((frames, lengths))
    assert mask.sum(1).tolist() == subsampled_lengths(lengths, 2).tolist() == [10, 31]


def test_normalisation_and_char_tokenizer():
    assert normalise("  Don't STOP, go—left!  ") == "dont stop go left"
    tokenizer = CharTokenizer.from_texts(["one two", "red"])
    ids = tokenizer.encode("Two, red!")
    assert tokenizer.decode([*ids, tokenizer.eos_id, 5]) == "two red"
    assert tokenizer.encode("xyz") == [tokenizer.unk_id] * 3


def test_wer_and_cer_on_normalised_text():
    metrics = speech_metrics()
    metrics.update(["One, two!", "one tw"], [["one two"], ["ONE two."]])
    scores = {k: float(v) for k, v in metrics.compute().items()}
    assert scores["wer"] == pytest.approx(1 / 4)  # one wrong word of four
    assert scores["cer"] == pytest.approx(1 / 14)  # one missing character of fourteen


# ---- real audio -----------------------------------------------------------------------


def _tone(seconds: float, rate: int = SAMPLE_RATE, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


def test_decode_audio_checks_rate_channels_and_content(tmp_path):
    soundfile.write(tmp_path / "stereo.wav", _tone(0.5, channels=2), SAMPLE_RATE)
    assert decode_audio(tmp_path / "stereo.wav", resample=False).shape == (8000,)
    soundfile.write(tmp_path / "cd.flac", _tone(1.0, rate=22050), 22050)
    with pytest.raises(BadAudio, match="22050 Hz.*task.data.resample=true"):
        decode_audio(tmp_path / "cd.flac", resample=False)
    assert abs(len(decode_audio(tmp_path / "cd.flac", resample=True)) - SAMPLE_RATE) <= 1
    with pytest.raises(BadAudio, match="cannot be decoded"):
        decode_audio(b"RIFF\x00\x00not a wave file at all", resample=False)
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SAMPLE_RATE)
    with pytest.raises(BadAudio, match="empty"):
        decode_audio(tmp_path / "empty.wav", resample=False)


def _folder(tmp_path, rows: list[tuple[str, str]], delimiter: str = ",", name="transcript.csv"):
    for i, (path, _) in enumerate(rows):
        soundfile.write(tmp_path / path, _tone(0.3 + 0.1 * i), SAMPLE_RATE)
    lines = ["path" + delimiter + "text"] + [f"{p}{delimiter}{t}" for p, t in rows]
    (tmp_path / name).write_text("\n".join(lines) + "\n")


def _load_with_audio(tmp_path, skip=False, transcript="transcript.csv", resample=False):
    return load_folder(str(tmp_path), transcript, 20, resample, skip, (0.2, 0.2), 0)


def _load(tmp_path, **kwargs):
    return _load_with_audio(tmp_path, **kwargs)[0]


GOOD = [(f"clip{i}.wav", f"word {i}") for i in range(10)]


@pytest.mark.parametrize("delimiter,name", [(",", "transcript.csv"), ("\t", "list.tsv")])
def test_folder_loader_reads_and_splits(tmp_path, delimiter, name):
    _folder(tmp_path, GOOD, delimiter, name)
    splits = _load(tmp_path, transcript=name)
    assert {s: len(e) for s, e in splits.items()} == {"train": 6, "val": 2, "test": 2}
    texts = sorted(t for ex in splits.values() for _, t in ex)
    assert texts == sorted(t for _, t in GOOD)
    features, text = splits["train"][0]
    assert features.shape[1] == 20 and features.shape[0] >= 30


def test_folder_split_column_is_respected(tmp_path):
    _folder(tmp_path, GOOD[:3])
    (tmp_path / "transcript.csv").write_text(
        "file,text,split\nclip0.wav,a,test\nclip1.wav,b,train\nclip2.wav,c,val\n"
    )
    splits, waveforms = _load_with_audio(tmp_path)
    assert [[t for _, t in splits[s]] for s in ("train", "val", "test")] == [["b"], ["c"], ["a"]]
    assert [len(w) for w in waveforms("test")] == [len(_tone(0.3))]  # clip0's audio
    assert [len(w) for w in waveforms("val")] == [len(_tone(0.5))]  # clip2's


def _break(tmp_path, case: str) -> str:
    """Spoil one record of a good folder; returns the name the message must contain."""
    if case == "corrupt":
        (tmp_path / "clip3.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage bytes")
        return "clip3.wav"
    if case == "rate":
        soundfile.write(tmp_path / "clip3.wav", _tone(0.5, rate=22050), 22050)
        return "clip3.wav"
    if case == "empty":
        soundfile.write(tmp_path / "clip3.wav", np.zeros(0, np.float32), SAMPLE_RATE)
        return "clip3.wav"
    if case == "no transcript row":
        soundfile.write(tmp_path / "extra.flac", _tone(0.5), SAMPLE_RATE)
        return "extra.flac"
    if case == "missing file":
        (tmp_path / "clip3.wav").unlink()
        return "clip3.wav"
    text = (tmp_path / "transcript.csv").read_text().replace("clip3.wav,word 3", "clip3.wav,")
    (tmp_path / "transcript.csv").write_text(text)
    return "clip3.wav"


BAD_CASES = ["corrupt", "rate", "empty", "no transcript row", "missing file", "empty text"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_a_bad_file_stops_the_run_naming_it(tmp_path, case):
    _folder(tmp_path, GOOD)
    name = _break(tmp_path, case)
    with pytest.raises(UserError, match=rf"1 bad audio record.*{name}.*skip_bad_files=true"):
        _load(tmp_path)


@pytest.mark.parametrize("case", BAD_CASES)
def test_a_bad_file_is_skipped_with_a_warning_when_asked(tmp_path, case, caplog):
    _folder(tmp_path, GOOD)
    name = _break(tmp_path, case)
    with caplog.at_level(logging.WARNING):
        splits = _load(tmp_path, skip=True)
    assert sum(len(e) for e in splits.values()) == (10 if case == "no transcript row" else 9)
    assert "word 3" not in {t for ex in splits.values() for _, t in ex} or case.startswith("no")
    assert [r for r in caplog.records if name in r.getMessage() and "skipping" in r.getMessage()]


def test_a_resampled_folder_and_a_bad_transcript(tmp_path):
    _folder(tmp_path, GOOD)
    soundfile.write(tmp_path / "clip3.wav", _tone(0.5, rate=22050), 22050)
    assert sum(len(e) for e in _load(tmp_path, resample=True).values()) == 10
    (tmp_path / "transcript.csv").write_text("name,sentence\nclip0.wav,x\n")
    with pytest.raises(UserError, match="'path' .*'text' column; found: name, sentence"):
        _load(tmp_path)
    with pytest.raises(UserError, match="transcript file not found"):
        _load(tmp_path, transcript="nope.csv")


def test_built_task_from_a_folder_follows_the_contract(tmp_path):
    _folder(tmp_path, GOOD)
    options = SpeechOptions(
        data=SpeechDataOptions(
            source="folder", path=str(tmp_path), val_fraction=0.2, test_fraction=0.2
        ),
        units="char",
        n_mels=20,
    )
    task = build_speech(options)
    assert task.primary_metric == "wer" and task.higher_is_better is False
    assert task.data_info["source"] == "folder"
    task.datamodule.batch_size = 4
    batch = next(iter(task.datamodule.train_dataloader()))
    frames, lengths = batch["source"]
    assert frames.shape[0] == 4 and frames.shape[2] == 20 and lengths.max() == frames.shape[1]
    assert (batch["target"][:, 0] == task.tokenizer.bos_id).all()
    decoded = task.tokenizer.decode(batch["target"][0, 1:].tolist())
    assert [decoded] == batch["references"][0]
    x, mask = task.frontend(32, None)(batch["source"])
    assert x.shape[:2] == mask.shape and x.shape[2] == 32
    assert task.source_length >= mask.shape[1]
    loaders = {"val": task.datamodule.val_dataloader(), "test": task.datamodule.test_dataloader()}
    for split, loader in loaders.items():  # each example's own file, in the loader's order
        texts = [refs[0] for batch in loader for refs in batch["references"]]
        clips = [f"clip{text.split()[1]}.wav" for text in texts]
        expected = [decode_audio(tmp_path / clip, resample=False) for clip in clips]
        waves = task.waveforms(split)
        assert len(waves) == len(expected) == 2
        assert all(np.array_equal(a, b) for a, b in zip(waves, expected, strict=True))


def test_source_options_are_checked():
    with pytest.raises(UserError, match="needs task.data.path"):
        build_speech(SpeechOptions(data=SpeechDataOptions(source="folder")))
    with pytest.raises(UserError, match="words_min=5 exceeds"):
        build_speech(SpeechOptions(data=SpeechDataOptions(words_min=5, words_max=3)))


# ---- through the runner ----------------------------------------------------------------

SMALL_SPEECH = [
    "task=speech_to_text",
    "task.data.train_size=16",
    "task.data.val_size=4",
    "task.data.test_size=4",
    "task.data.words_max=3",
    "task.batch_size=8",
    "task.eval_batch_size=8",
    "task.n_mels=20",
]
DEBUG = ["backend=flash", "trainer=debug", "logger=none", "model.d_model=32"]


@pytest.mark.slow
@pytest.mark.parametrize("units", ["word", "char"])
def test_fast_dev_run_writes_an_ok_record(tmp_path, units):
    config = composed_config([*DEBUG, *SMALL_SPEECH, f"task.units={units}"])
    result = execute(plan_run(config, get_registry()), tmp_path)
    assert result.status == "ok", result.error
    assert result.quality.primary_metric == "wer" and not result.quality.higher_is_better
    assert set(result.quality.metrics) == {"wer", "cer"}
    assert result.task.data["source"] == "embedded" and len(result.task.data["checksum"]) == 64
    assert result.task.source_length > 10


@pytest.mark.slow
def test_a_folder_runs_through_configuration_alone(tmp_path):
    _folder(tmp_path, GOOD)
    soundfile.write(tmp_path / "clip3.wav", _tone(0.5, rate=22050), 22050)
    folder = [f"task.data.path={tmp_path}", "task.data.source=folder", "task.units=char"]
    config = composed_config([*DEBUG, "task=speech_to_text", *folder, "task.data.resample=true"])
    result = execute(plan_run(config, get_registry()), tmp_path / "run")
    assert result.status == "ok", result.error
    assert result.task.data["sizes"] == {"train": 8, "val": 1, "test": 1}


def test_a_bad_folder_stops_the_run_before_training(tmp_path):
    _folder(tmp_path, GOOD)
    _break(tmp_path, "corrupt")
    folder = [f"task.data.path={tmp_path}", "task.data.source=folder"]
    config = composed_config([*DEBUG, "task=speech_to_text", *folder])
    with pytest.raises(UserError, match="clip3.wav"):
        execute(plan_run(config, get_registry()), tmp_path / "run")
    assert not list((tmp_path / "run").glob("**/*.ckpt"))


def test_hf_rows_in_undecoded_audio_form(tmp_path, caplog):
    buffer = io.BytesIO()
    soundfile.write(buffer, _tone(0.5), SAMPLE_RATE, format="WAV")
    soundfile.write(tmp_path / "on_disk.flac", _tone(0.4), SAMPLE_RATE)
    rows = [
        {"audio": {"bytes": buffer.getvalue(), "path": "a.wav"}, "text": "One two."},
        {"audio": {"bytes": None, "path": str(tmp_path / "on_disk.flac")}, "text": "three"},
        {"audio": {"bytes": b"garbage", "path": "broken.wav"}, "text": "four"},
    ]
    records = list(hf_records("ds[train]", rows, "audio", "text"))
    with pytest.raises(UserError, match=r"ds\[train\] row 2 \(broken.wav\) cannot be decoded"):
        _checked(records, skip=False)
    with caplog.at_level(logging.WARNING):
        examples = _checked(records, skip=True)
    assert [t for _, (_, t), _ in examples] == ["One two.", "three"]
    assert [len(f) for _, (f, _), _ in examples] == [51, 41]
    assert "broken.wav" in caplog.text
    assert [audio for *_, audio in examples] == [None, None]  # not asked to keep it
    kept = _checked(records, skip=True, keep_audio=True)
    waves = [decode_audio(audio(), resample=False) for *_, audio in kept]
    assert [len(w) for w in waves] == [8000, 6400]


def _checked(records, skip: bool, keep_audio: bool = False):
    checker = RecordChecker(skip)
    examples = examples_of(records, checker, 20, resample=False, keep_audio=keep_audio)
    checker.finish()
    return examples


def test_hf_without_datasets_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    options = SpeechOptions(data=SpeechDataOptions(source="hf", hf_name="someone/speech"))
    with pytest.raises(UserError, match=r"pip install 'xbench\[hf\]'"):
        build_speech(options)

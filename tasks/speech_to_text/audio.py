"""Waveforms in, normalised log-mel features out; and decoding of audio files.

Features: 16 kHz audio, 25 ms Hann windows every 10 ms, ``n_mels`` mel bands (librosa),
log power in dB, then each band normalised to zero mean and unit variance over the
utterance (per-utterance CMVN: needs no corpus statistics and removes level and channel
differences between recordings).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from xbench.api.task import WAVEFORM_RATE

SAMPLE_RATE = WAVEFORM_RATE  # the features' rate is the one Task.waveforms hands out
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms: 100 feature frames per second


class BadAudio(Exception):
    """An audio file or record that cannot be used; the message says why."""


def log_mel(wave: np.ndarray, n_mels: int) -> np.ndarray:
    """(frames, n_mels) float32 features of a mono 16 kHz float waveform."""
    import librosa

    power = librosa.feature.melspectrogram(
        y=wave.astype(np.float32), sr=SAMPLE_RATE, n_fft=WINDOW, hop_length=HOP, n_mels=n_mels
    )
    db = librosa.power_to_db(power, ref=np.max, top_db=80.0)
    mean, std = db.mean(axis=1, keepdims=True), db.std(axis=1, keepdims=True)
    return ((db - mean) / np.maximum(std, 1e-5)).T.astype(np.float32)


def pcm16(wave: np.ndarray) -> np.ndarray:
    """``wave`` (float, full scale ±1) as int16 samples, clipped: half the bytes of float32
    and exact for audio that came from 16-bit PCM."""
    return np.clip(np.round(wave * 32767.0), -32768, 32767).astype(np.int16)


def pcm16_to_float(samples: np.ndarray) -> np.ndarray:
    """int16 samples as a float32 waveform (the inverse of :func:`pcm16`)."""
    return samples.astype(np.float32) / 32767.0


def joined_waveforms(waves: list[np.ndarray], per_example: int) -> list[np.ndarray]:
    """Consecutive waveforms joined into examples of ``per_example``, one after the other,
    as the task joins those utterances' features."""
    return [np.concatenate(waves[i : i + per_example]) for i in range(0, len(waves), per_example)]


def to_16k(wave: np.ndarray, rate: int) -> np.ndarray:
    """Resample with soxr (librosa's default high-quality resampler)."""
    import librosa

    return (
        wave if rate == SAMPLE_RATE else librosa.resample(wave, orig_sr=rate, target_sr=SAMPLE_RATE)
    )


def decode_audio(data: str | Path | bytes, resample: bool) -> np.ndarray:
    """Mono float32 16 kHz waveform of a file (path or bytes) soundfile can read.

    Raises :class:`BadAudio` for unreadable data, empty audio, or another sample rate
    unless ``resample`` allows converting it. Channels are averaged.
    """
    import soundfile

    try:
        wave, rate = soundfile.read(
            io.BytesIO(data) if isinstance(data, bytes) else data, dtype="float32"
        )
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise BadAudio(f"cannot be decoded ({error})") from None
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    if wave.size == 0:
        raise BadAudio("is empty (no audio samples)")
    if not np.isfinite(wave).all():
        raise BadAudio("contains NaN or infinite samples")
    if rate != SAMPLE_RATE:
        if not resample:
            raise BadAudio(
                f"has sample rate {rate} Hz, expected {SAMPLE_RATE} Hz "
                "(set task.data.resample=true to convert it)"
            )
        wave = to_16k(wave, rate)
    return wave

"""Offline speech synthesis with eSpeak NG, driven through ctypes.

The ``espeakng-loader`` wheel ships the shared library and its voice data, so no system
package is needed. eSpeak keeps hidden state between utterances (its pitch-flutter phase
and libc's ``rand()`` for breath noise), so the same text sounds slightly different
depending on what was spoken before it — even after ``espeak_Terminate``. A batch is
therefore always synthesized in a fresh process, in a fixed order, with fixed random
seeds: the same requests give byte-identical audio on every build.

This file runs as a script in that child process, so it imports nothing from xbench.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np

_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: audio is handed to the callback, no device
_POS_CHARACTER, _CHARS_UTF8 = 1, 1
_RATE, _PITCH = 1, 3  # espeak_PARAMETER values
_LIST_TERMINATED, _WORD = 0, 1  # espeak_EVENT_TYPE values


class _Event(ctypes.Structure):
    """eSpeak NG's ``espeak_EVENT`` (``id`` is a union of an int, a pointer and 8 chars)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds into the utterance
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_int64),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class Utterance(TypedDict):
    """One synthesis request: ``voice`` is ``language+variant``, e.g. ``en-us+f3``."""

    text: str
    voice: str
    rate: int  # words per minute
    pitch: int  # 0-100


def synthesize(requests: Sequence[Utterance]) -> tuple[list[np.ndarray], int]:
    """int16 waveforms of ``requests`` and their sample rate, made in a fresh process."""
    waves, _, rate = synthesize_timed(requests)
    return waves, rate


def synthesize_timed(
    requests: Sequence[Utterance],
) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """:func:`synthesize` plus each utterance's word onsets: the milliseconds at which
    eSpeak starts each word of its text (its word events), in text order."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "audio.npz"
        done = subprocess.run(
            [sys.executable, __file__, str(output)],
            input=json.dumps(list(requests)).encode(),
            capture_output=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"eSpeak NG synthesis failed: {done.stderr.decode().strip()}")
        with np.load(output) as saved:
            audio, offsets, rate = saved["audio"], saved["offsets"], int(saved["sample_rate"])
            onsets, onset_offsets = saved["onsets"], saved["onset_offsets"]
    waves = [audio[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    words = [onsets[a:b] for a, b in zip(onset_offsets[:-1], onset_offsets[1:], strict=True)]
    return waves, words, rate


class _Engine:
    """The library in this process, initialised for synchronous synthesis to memory."""

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.libc = ctypes.CDLL(None)
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p]
        self.lib.espeak_Initialize.argtypes += [ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = self.lib.espeak_Initialize(_SYNCHRONOUS, 0, data, 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed with {self.sample_rate}")
        self.chunks: list[np.ndarray] = []
        self.onsets: list[int] = []
        self.callback = _CALLBACK(self._receive)  # kept alive as long as the engine
        self.lib.espeak_SetSynthCallback(self.callback)

    def _receive(self, samples, count: int, events) -> int:
        if count > 0:
            self.chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        index = 0
        while events and events[index].type != _LIST_TERMINATED:
            if events[index].type == _WORD:
                self.onsets.append(events[index].audio_position)
            index += 1
        return 0  # 0 = go on

    def speak(self, request: Utterance) -> tuple[np.ndarray, np.ndarray]:
        """The utterance's samples and its word onsets in milliseconds."""
        if self.lib.espeak_SetVoiceByName(request["voice"].encode()) != 0:
            raise RuntimeError(f"eSpeak NG has no voice {request['voice']!r}")
        self.lib.espeak_SetParameter(_RATE, int(request["rate"]), 0)
        self.lib.espeak_SetParameter(_PITCH, int(request["pitch"]), 0)
        self.lib.espeak_ng_SetRandSeed(0)
        self.libc.srand(0)
        self.chunks, self.onsets = [], []
        text = request["text"].encode()
        status = self.lib.espeak_Synth(
            text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != 0 or self.lib.espeak_Synchronize() != 0:
            raise RuntimeError(f"espeak_Synth failed on {request['text']!r}")
        wave = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        return wave, np.array(self.onsets, dtype=np.int64)


def _main(output: str) -> None:
    engine = _Engine()
    spoken = [engine.speak(request) for request in json.load(sys.stdin)]
    waves, onsets = [w for w, _ in spoken], [o for _, o in spoken]
    offsets = np.cumsum([0] + [len(w) for w in waves])
    audio = np.concatenate(waves) if waves else np.zeros(0, np.int16)
    with open(output, "wb") as handle:
        np.savez(
            handle,
            audio=audio,
            offsets=offsets,
            sample_rate=engine.sample_rate,
            onsets=np.concatenate(onsets) if onsets else np.zeros(0, np.int64),
            onset_offsets=np.cumsum([0] + [len(o) for o in onsets]),
        )


if __name__ == "__main__":
    _main(sys.argv[1])

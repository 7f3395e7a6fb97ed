"""What this machine can train on: a request it cannot serve (``trainer=gpu`` without a
GPU, more devices than exist) is refused before any data is built, naming what there is."""

from __future__ import annotations

import os

import torch

from xbench.api.errors import UserError
from xbench.config.settings import TrainerSettings

_CUDA = ("gpu", "cuda")


def available() -> str:
    """The accelerators here, in words: ``cpu (16 cores), cuda (2 × NVIDIA H200)``."""
    found = [f"cpu ({os.cpu_count() or 1} cores)"]
    if torch.cuda.is_available():
        found.append(f"cuda ({torch.cuda.device_count()} × {torch.cuda.get_device_name(0)})")
    if _mps_available():
        found.append("mps")
    if _tpu_available():
        found.append("tpu")
    return ", ".join(found)


def check_devices(trainer: TrainerSettings) -> None:
    """Refuse an accelerator that is absent or more devices than it has (``auto`` and the
    cpu always pass: Lightning picks, and cpu processes are not limited by cores)."""
    accelerator = trainer.accelerator
    if accelerator in ("auto", "cpu"):
        return
    present = {
        "mps": _mps_available,
        "tpu": _tpu_available,
    }.get(accelerator, torch.cuda.is_available)()
    if not present:
        raise UserError(
            f"trainer.accelerator={accelerator} is not available on this machine; "
            f"available: {available()} (use trainer=cpu or trainer.accelerator=auto)"
        )
    if accelerator in _CUDA:
        count = torch.cuda.device_count()
        wanted = _device_indices(trainer.devices)
        if wanted and max(wanted) >= count:
            raise UserError(
                f"trainer.devices={trainer.devices!r} asks for more {accelerator} devices than "
                f"the {count} here; available: {available()}"
            )


def _device_indices(devices: int | str) -> list[int]:
    """The device indices a ``devices`` value names: a count N (``2`` or ``"2"``, as
    Lightning reads it) means 0..N-1, ``"0,3"`` those indices, -1 and auto whatever exists."""
    if devices in ("auto", -1):
        return []
    if isinstance(devices, str) and "," in devices:
        return [int(part) for part in devices.split(",") if part.strip()]
    return list(range(int(devices)))


def _mps_available() -> bool:
    return torch.backends.mps.is_available()


def _tpu_available() -> bool:
    from lightning.pytorch.accelerators import XLAAccelerator

    return XLAAccelerator.is_available()

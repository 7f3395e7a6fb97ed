"""Convolutional subsampling of log-mel frames into encoder inputs, with a padding mask.

Each layer is a stride-2 1-D convolution (kernel 3, padding 1) followed by GELU, so
``layers`` layers divide the frame rate by 2**layers (2 layers: 100 → 25 frames per
second). Frames past an utterance's true length are zeroed before every layer, so a
real output frame never sees batch padding: an utterance's outputs do not depend on what
it was batched with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xbench.taskkit.text import sinusoidal_positions

KERNEL, STRIDE, PADDING = 3, 2, 1


def subsampled_lengths(lengths: Tensor, layers: int) -> Tensor:
    """Output frames of each input length after ``layers`` convolutions."""
    for _ in range(layers):
        lengths = torch.div(lengths + 2 * PADDING - KERNEL, STRIDE, rounding_mode="floor") + 1
    return lengths


def _keep(lengths: Tensor, frames: int) -> Tensor:
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


class ConvSubsampling(nn.Module):
    """Input ``(features (B, T, n_mels) float, lengths (B,) long)``; output
    ``(x (B, T / 2**layers, d_model), key_padding_mask)`` with sinusoidal positions."""

    def __init__(self, n_mels: int, d_model: int, layers: int) -> None:
        super().__init__()
        channels = [n_mels] + [d_model] * layers
        self.convs = nn.ModuleList(
            nn.Conv1d(a, b, KERNEL, STRIDE, PADDING)
            for a, b in zip(channels[:-1], channels[1:], strict=True)
        )
        self.d_model = d_model

    def forward(self, source: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        features, lengths = source
        x = features.transpose(1, 2)  # (B, channels, T)
        for conv in self.convs:
            x = x * _keep(lengths, x.shape[-1])[:, None, :].to(x.dtype)
            x = F.gelu(conv(x))
            lengths = subsampled_lengths(lengths, 1)
        x = x.transpose(1, 2)
        x = x + sinusoidal_positions(x.shape[1], self.d_model, x.device).to(x.dtype)
        return x, _keep(lengths, x.shape[1])

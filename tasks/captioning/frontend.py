"""ViT-style patch frontend: pixels → one encoder position per patch, with 2-D positions.

Images of different sizes share a batch padded to its largest height and width. Each
image's real patches (those not entirely in padding) are packed to the front of its row in
raster order of its *own* patch grid, and the rest is masked. An image therefore gets the
same encoder positions, neighbours and relative offsets whatever it is batched with, so the
encoder's (1-D, relative) self-attention and convolution give it the same outputs alone
or in company. :func:`patch_position` maps an encoder position back to its patch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xbench.taskkit.text import sinusoidal_positions


def patch_grid(height: int, width: int, patch: int) -> tuple[int, int]:
    """(rows, cols) of patches covering a ``height`` × ``width`` image (the last row and
    column may be partly padding)."""
    return math.ceil(height / patch), math.ceil(width / patch)


def source_image(source: dict, index: int, patch: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Example ``index`` of a batch's source as an H×W×3 uint8 picture with its patch grid,
    whose row-major cells are the encoder's positions (for attention overlays)."""
    height, width = (int(v) for v in source["sizes"][index])
    pixels = source["pixels"][index, :, :height, :width].permute(1, 2, 0)
    return pixels.cpu().numpy(), patch_grid(height, width, patch)


def patch_position(position: int, height: int, width: int, patch: int) -> tuple[int, int]:
    """The (row, col) patch that encoder position ``position`` holds for an image of that
    size; the patch covers pixels [row·patch, (row+1)·patch) × [col·patch, (col+1)·patch).
    For drawing cross-attention weights over the image."""
    rows, cols = patch_grid(height, width, patch)
    if not 0 <= position < rows * cols:
        raise IndexError(f"position {position} is outside the {rows}×{cols} patch grid")
    return divmod(position, cols)


def positions_2d(rows: int, cols: int, dim: int, device=None) -> Tensor:
    """(rows, cols, dim) sinusoidal codes: half the channels for the row, half for the column."""
    half = dim // 2
    row = sinusoidal_positions(rows, half, device)[:, None, :].expand(rows, cols, half)
    col = sinusoidal_positions(cols, dim - half, device)[None, :, :].expand(rows, cols, dim - half)
    return torch.cat([row, col], dim=-1)


class PatchFrontend(nn.Module):
    """Input: ``{"pixels": uint8 (B, 3, H, W), "sizes": long (B, 2)}`` — images padded at
    the bottom/right to the batch's H and W, and each image's real (height, width).
    Output: ``(x (B, N, d_model), key_padding_mask (B, N))``, N = most patches of any image.
    """

    def __init__(self, d_model: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.embed = nn.Conv2d(3, d_model, kernel_size=patch, stride=patch)

    def forward(self, source: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        pixels, sizes = source["pixels"], source["sizes"]
        height, width = pixels.shape[-2:]
        rows, cols = patch_grid(height, width, self.patch)
        pad = (0, cols * self.patch - width, 0, rows * self.patch - height)
        # Padded before scaling, so padding reads as black whether the batch or this pad added it.
        x = F.pad(pixels.float(), pad) / 127.5 - 1.0
        x = self.embed(x).permute(0, 2, 3, 1)  # (B, rows, cols, d)
        x = x + positions_2d(rows, cols, x.shape[-1], x.device).to(x.dtype)
        own_rows = torch.div(sizes[:, 0] + self.patch - 1, self.patch, rounding_mode="floor")
        own_cols = torch.div(sizes[:, 1] + self.patch - 1, self.patch, rounding_mode="floor")
        grid_rows = torch.arange(rows, device=x.device)[None, :, None]
        grid_cols = torch.arange(cols, device=x.device)[None, None, :]
        real = (grid_rows < own_rows[:, None, None]) & (grid_cols < own_cols[:, None, None])
        real = real.flatten(1)
        # A stable sort on "is padding" moves real patches to the front in raster order.
        order = torch.argsort((~real).to(torch.int8), dim=1, stable=True)
        length = int((own_rows * own_cols).max())
        order = order[:, :length]
        x = x.flatten(1, 2).gather(1, order[..., None].expand(-1, -1, x.shape[-1]))
        mask = torch.arange(length, device=x.device)[None, :] < (own_rows * own_cols)[:, None]
        return x * mask[..., None].to(x.dtype), mask

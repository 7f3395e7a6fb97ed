"""Attention maps drawn as PNG files with matplotlib's object API (no display, no pyplot
state), so drawing works the same in a sweep worker, on a cluster node or in a test."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

MAX_TICK_LABELS = 80  # more labels than this on an axis are thinned to every n-th
OVERLAY_TOKENS = 16  # panels of an overlay figure (its first generated tokens)
OVERLAY_COLUMNS = 4


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _label_axis(set_ticks, labels: Sequence[str], **style) -> None:
    step = math.ceil(len(labels) / MAX_TICK_LABELS) or 1
    set_ticks(range(0, len(labels), step), list(labels)[::step], **style)


TRUTH_COLOUR = "red"  # marks of the true positions (the task's alignment)


def heatmap_figure(
    weights: np.ndarray,
    generated: Sequence[str],
    source: Sequence[str],
    source_axis: str,
    title: str,
    truth: np.ndarray | None = None,
) -> Figure:
    """Generated tokens (rows) × source positions (columns), one cell per weight; a red
    square outlines each true position of ``truth`` (bool, the same shape), if given."""
    rows, columns = weights.shape
    figure = Figure(
        figsize=(_clip(2.5 + 0.16 * columns, 4, 24), _clip(1.8 + 0.28 * rows, 2.5, 16)),
        layout="constrained",
    )
    axes = figure.add_subplot()
    image = axes.imshow(weights, aspect="auto", cmap="viridis", vmin=0.0, interpolation="nearest")
    _label_axis(axes.set_yticks, generated, fontsize=8)
    _label_axis(axes.set_xticks, source, fontsize=7, rotation=90)
    axes.set_xlabel(source_axis)
    axes.set_ylabel("generated token")
    axes.set_title(title, fontsize=9)
    if truth is not None and truth.any():
        rows_at, columns_at = np.nonzero(truth)
        axes.scatter(
            columns_at,
            rows_at,
            marker="s",
            s=_clip(2400 / max(columns, rows), 4, 60),
            facecolors="none",
            edgecolors=TRUTH_COLOUR,
            linewidths=0.8,
            label="true position",
        )
        axes.legend(loc="upper right", fontsize=7, framealpha=0.6)
    figure.colorbar(image, ax=axes, label="attention weight")
    return figure


def upsample_to_image(
    weights: np.ndarray, grid: tuple[int, int], size: tuple[int, int]
) -> np.ndarray:
    """One token's weights over a (rows, cols) patch grid, bilinearly resized to (H, W)."""
    patches = torch.as_tensor(weights, dtype=torch.float32).reshape(1, 1, *grid)
    return F.interpolate(patches, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def overlay_figure(
    image: np.ndarray,
    grid: tuple[int, int],
    weights: np.ndarray,
    generated: Sequence[str],
    title: str,
    truth: np.ndarray | None = None,
) -> Figure:
    """One panel per generated token: the image with that token's attention laid over it,
    on one colour scale for all panels (a diffuse token looks dim, a focused one bright);
    the token's true patches of ``truth`` (bool, as ``weights``) outlined in red."""
    tokens = min(len(generated), OVERLAY_TOKENS)
    top = max(float(weights[:tokens].max()), 1e-12)
    columns = min(OVERLAY_COLUMNS, tokens)
    rows = math.ceil(tokens / columns)
    height, width = image.shape[:2]
    figure = Figure(
        figsize=(2.6 * columns, 2.6 * rows * height / width + 0.6), layout="constrained"
    )
    for index in range(tokens):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.imshow(image)
        heat = upsample_to_image(weights[index], grid, (height, width))
        axes.imshow(heat, cmap="inferno", alpha=0.55, vmin=0.0, vmax=top)
        if truth is not None and truth[index].any():
            cells = truth[index].reshape(grid).astype(float)
            outline = np.kron(cells, np.ones((-(-height // grid[0]), -(-width // grid[1]))))
            axes.contour(
                outline[:height, :width], levels=[0.5], colors=TRUTH_COLOUR, linewidths=1.0
            )
        axes.set_title(generated[index], fontsize=9)
        axes.set_axis_off()
    figure.suptitle(title, fontsize=9)
    return figure


def save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path

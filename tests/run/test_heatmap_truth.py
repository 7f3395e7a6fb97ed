"""Heatmaps mark the task's true positions: a red square on each aligned cell, an outline
of the aligned patches on image overlays."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.colors import to_rgba

from xbench.run.heatmap_plots import TRUTH_COLOUR, heatmap_figure, overlay_figure
from xbench.run.heatmaps import truth_rows


def test_the_heatmap_marks_exactly_the_aligned_cells():
    weights = np.full((3, 5), 0.2)
    truth = np.zeros((3, 5), dtype=bool)
    truth[0, 1] = truth[1, 2] = truth[1, 3] = True
    figure = heatmap_figure(weights, list("abc"), list("vwxyz"), "source token", "t", truth)
    (marks,) = figure.axes[0].collections
    assert sorted(map(tuple, marks.get_offsets().tolist())) == [(1, 0), (2, 1), (3, 1)]
    assert tuple(marks.get_edgecolor()[0]) == to_rgba(TRUTH_COLOUR)
    plain = heatmap_figure(weights, list("abc"), list("vwxyz"), "source token", "t")
    assert not plain.axes[0].collections


def test_the_overlay_outlines_the_true_patches_of_each_token():
    image = np.zeros((8, 12, 3), dtype=np.uint8)
    weights = np.full((2, 6), 1 / 6)
    truth = np.zeros((2, 6), dtype=bool)
    truth[0, [1, 4]] = True  # the middle column of a 2x3 grid
    figure = overlay_figure(image, (2, 3), weights, ["a", "b"], "t", truth)
    outlined, unknown = figure.axes[0], figure.axes[1]
    assert len(outlined.collections) == 1 and not unknown.collections
    (path,) = outlined.collections[0].get_paths()
    xs = path.vertices[:, 0]
    assert 3 <= xs.min() <= 4 and 7 <= xs.max() <= 8  # pixels 4-7: the middle patch column


def test_truth_rows_follow_the_generated_length_and_the_real_columns():
    alignment = torch.zeros(3, 6, dtype=torch.bool)
    alignment[0, 2] = alignment[2, 5] = True
    real = torch.tensor([0, 2, 5])
    assert truth_rows(alignment, 2, real).tolist() == [[False, True, False], [False] * 3]
    padded = truth_rows(alignment, 5, real)
    assert padded.shape == (5, 3) and padded[2, 2] and not padded[3:].any()

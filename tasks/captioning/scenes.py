"""Scene graphs of the embedded captioning data: a few coloured shapes on a noisy canvas.

A scene is plain JSON-able data (so it can be cached and re-rendered at any resolution):
objects with a shape, colour, size, texture and a centre in [0, 1]² (y grows downwards).

Every scene of ``n`` objects holds the same words: the first ``n`` colours and the first
``n`` shapes, each once, paired at random. What differs between scenes is only which colour
goes with which shape, the sizes and the places — exactly what a caption can get right
only by looking at the right patches. (With free colours and shapes, the mere set of words
present, which the ``uniform`` control reads off the average patch, earns half the CIDEr.)

Objects sit in distinct columns of a ``grid`` × ``grid`` layout (jittered inside the cell),
so "from left to right" has one order;
with ``patch_size = image_size / grid`` every object lies in one patch. Every pair of
objects is further apart along one axis than the other, so "left of" / "above" is never a
coin toss. Some colour–shape pairs are held out of training and of the ordinary evaluation
splits; the compositional split puts at least one of them in every scene.

With ``marked``, one object of each scene (``"marked"``: its index) is drawn on a white tile
filling its grid cell: the caption describes that object alone, so the decoder must find
one cell among all the patches (the ``uniform`` control's average patch cannot say which
object sits on the tile).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

# Part of the cache key: bump it whenever the generator's output changes.
GENERATOR_VERSION = 3

COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("circle", "square", "triangle", "diamond")
SIZES = {"small": 0.28, "large": 0.42}  # half extent, as a fraction of a grid cell
JITTER = 0.06  # largest shift of an object's centre inside its cell, in cells
OCCLUDING_SHIFT = 0.45  # an occluding object shifts this far towards a neighbour, in cells

Scene = dict[str, Any]


@dataclass(frozen=True)
class SceneOptions:
    """Shape of the embedded data (mirrors the task's ``data`` options)."""

    objects: int
    grid: int
    texture: float
    occlusion: float
    heldout_pairs: int
    seed: int
    marked: bool = False


def palette(options: SceneOptions) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The colours and shapes every scene holds."""
    return COLOURS[: options.objects], SHAPES[: options.objects]


def heldout_pairs(options: SceneOptions) -> list[tuple[str, str]]:
    """The colour–shape pairs no training scene contains, drawn from the seed.

    Pairs come from one random pairing, so no colour or shape is held out twice and every
    scene pairing can still avoid them all (a derangement of that pairing).
    """
    colours, shapes = palette(options)
    rng = random.Random(f"{options.seed}/heldout")
    pairing = list(zip(colours, rng.sample(shapes, len(shapes)), strict=True))
    return sorted(rng.sample(pairing, min(options.heldout_pairs, len(pairing) - 1)))


def _clear_axis(a: dict, b: dict) -> bool:
    return abs(a["x"] - b["x"]) != abs(a["y"] - b["y"])


def sample_scene(rng: random.Random, options: SceneOptions, pairs: set[tuple[str, str]]) -> Scene:
    """One scene whose colour–shape pairs all belong to ``pairs``."""
    colours, shapes = palette(options)
    grid = options.grid
    while True:
        chosen = list(zip(colours, rng.sample(shapes, len(shapes)), strict=True))
        if not set(chosen) <= pairs:
            continue
        cells = rng.sample(range(grid * grid), len(chosen))
        distinct_columns = len({cell % grid for cell in cells}) == len(cells)
        if distinct_columns and all(
            _clear_axis({"x": a % grid, "y": a // grid}, {"x": b % grid, "y": b // grid})
            for i, a in enumerate(cells)
            for b in cells[:i]
        ):
            break
    objects = []
    for (colour, shape), cell in zip(chosen, cells, strict=True):
        shift = OCCLUDING_SHIFT if rng.random() < options.occlusion else JITTER
        objects.append(
            {
                "shape": shape,
                "colour": colour,
                "size": rng.choice(sorted(SIZES)),
                "texture": "striped" if rng.random() < options.texture else "plain",
                "x": round((cell % grid + 0.5 + rng.uniform(-shift, shift)) / grid, 4),
                "y": round((cell // grid + 0.5 + rng.uniform(-shift, shift)) / grid, 4),
            }
        )
    scene = {
        "objects": objects,
        "grid": grid,
        "background": rng.randint(20, 110),
        "noise_seed": rng.randrange(2**31),
    }
    if options.marked:  # drawn last, so unmarked scenes are those of earlier versions
        scene["marked"] = rng.randrange(len(objects))
    return scene


def sample_split(
    options: SceneOptions, split: str, count: int, compositional: bool = False
) -> list[Scene]:
    """``count`` scenes for ``split``.

    Ordinary scenes use only the seen colour–shape pairs; compositional ones contain at
    least one held-out pair (and otherwise any pairs).
    """
    rng = random.Random(f"{options.seed}/{split}")
    held = set(heldout_pairs(options))
    colours, shapes = palette(options)
    everything = {(c, s) for c in colours for s in shapes}
    scenes = []
    while len(scenes) < count:
        if not compositional:
            scenes.append(sample_scene(rng, options, everything - held))
            continue
        scene = sample_scene(rng, options, everything)
        if any((o["colour"], o["shape"]) in held for o in scene["objects"]):
            scenes.append(scene)
    return scenes

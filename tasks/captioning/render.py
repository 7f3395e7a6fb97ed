"""Pixels of a scene graph, at any resolution.

Rendering is deterministic (the scene carries its noise seed) and fast (well under a
millisecond for a small image), so the cache stores scene graphs and images are drawn again
on every build instead of storing pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from xbench_tasks.captioning.scenes import SIZES, Scene

RGB = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 235),
    "yellow": (230, 215, 40),
    "purple": (155, 60, 205),
    "orange": (245, 140, 30),
}
TILE = 255.0  # the marked object's cell background (white)
NOISE_STD = 10.0  # pixel noise over the whole image, in 0-255 units
STRIPE_PERIOD = 0.1  # stripe width as a fraction of a grid cell


def _outline(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    return None


def object_mask(obj: dict, size: int, grid: int) -> np.ndarray:
    """(size, size) bool mask of one object drawn on a ``size``-pixel canvas."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy, r = obj["x"] * size, obj["y"] * size, SIZES[obj["size"]] * size / grid
    if obj["shape"] == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif obj["shape"] == "square":
        side = 0.85 * r  # about the circle's area, so size does not give the shape away
        draw.rectangle((cx - side, cy - side, cx + side, cy + side), fill=255)
    else:
        draw.polygon(_outline(obj["shape"], cx, cy, r), fill=255)
    return np.asarray(canvas) > 127


def marked_tile(scene: Scene, size: int) -> tuple[slice, slice]:
    """Rows and columns of the grid cell holding the marked object, on a ``size`` canvas."""
    obj, grid = scene["objects"][scene["marked"]], scene["grid"]
    row, col = int(obj["y"] * grid), int(obj["x"] * grid)
    return (
        slice(row * size // grid, (row + 1) * size // grid),
        slice(col * size // grid, (col + 1) * size // grid),
    )


def render(scene: Scene, size: int) -> np.ndarray:
    """(size, size, 3) uint8 image: noisy grey background (the marked object's cell white),
    objects drawn in list order
    (later ones cover earlier ones where they overlap), then pixel noise everywhere."""
    rng = np.random.default_rng(scene["noise_seed"])
    image = np.full((size, size, 3), float(scene["background"]))
    rows, cols = np.mgrid[0:size, 0:size]
    stripes = ((rows + cols) // max(1, round(STRIPE_PERIOD * size / scene["grid"]))) % 2 == 0
    if "marked" in scene:
        image[marked_tile(scene, size)] = TILE
    for obj in scene["objects"]:
        mask = object_mask(obj, size, scene["grid"])
        colour = np.array(RGB[obj["colour"]], dtype=float)
        image[mask] = colour
        if obj["texture"] == "striped":
            image[mask & stripes] = 0.45 * colour
    image += rng.normal(0.0, NOISE_STD, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)

"""Small COCO-format image folders written by the tests."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

# Image modes a COCO folder mixes: every one must load as RGB.
MODES = ("RGB", "L", "RGBA", "P", "CMYK", "LA")


def picture(mode: str, width: int, height: int, seed: int) -> Image.Image:
    """A random image of the given PIL mode and size."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def coco_folder(path, count=6, modes=MODES, uncaptioned=0):
    """A COCO-captions folder: images of several modes and sizes and their annotations."""
    path.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(count + uncaptioned):
        mode = modes[i % len(modes)]
        width, height = 20 + 4 * i, 30 - 2 * i
        name = f"img{i}.{'jpg' if mode == 'CMYK' else 'png'}"
        picture(mode, width, height, i).save(path / name)
        images.append({"id": 100 + i, "file_name": name, "width": width, "height": height})
        if i < count:
            for n in range(2):
                annotations.append(
                    {
                        "id": len(annotations),
                        "image_id": 100 + i,
                        "caption": f"picture {i} take {n}",
                    }
                )
    doc = {"images": images, "annotations": annotations}
    (path / "captions.json").write_text(json.dumps(doc))
    return path / "captions.json"

"""Real captioning data: COCO-captions files on disk, or an image+text dataset on the HF hub.

Every image is decoded, converted to RGB and resized once, when the task is built, so a
bad file stops the run before training with a message naming it. What counts as bad:

- an image file that is missing or cannot be decoded: an error naming the file, or skipped
  with a warning when ``skip_bad_images`` is set;
- an annotation whose ``image_id`` is not among the ``images``, a duplicate image id, a
  caption that is not a non-empty string: always an error (the file itself is wrong);
- an image without any caption: dropped with a warning (nothing to train or score on);
- grayscale, palette, CMYK or transparent images: converted to RGB (transparency over
  white).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from xbench.api.errors import UserError
from xbench.taskkit.files import existing_path, read_json
from xbench.taskkit.hf import load_hf_split
from xbench_tasks.captioning.data import CaptionedImage

log = logging.getLogger(__name__)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB version of any PIL image; transparent pixels become white."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def resize(image: Image.Image, size: int, keep_aspect: bool) -> np.ndarray:
    """(H, W, 3) uint8: the longer side scaled to ``size`` (or both sides, without
    ``keep_aspect``)."""
    if keep_aspect:
        scale = size / max(image.size)
        shape = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    else:
        shape = (size, size)
    return np.array(to_rgb(image).resize(shape, Image.Resampling.BICUBIC), dtype=np.uint8)


def load_image(path: Path, size: int, keep_aspect: bool) -> np.ndarray:
    """Decoded, RGB, resized pixels of an image file; UserError naming the file otherwise."""
    existing_path(path, "file", "image file")
    try:
        with Image.open(path) as image:
            image.load()
            return resize(image, size, keep_aspect)
    except FileNotFoundError:
        raise UserError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UserError(f"cannot decode image {path}: {error}") from None


def _records(doc: Any, key: str, fields: tuple[str, ...], where: Path) -> list[Mapping]:
    records = doc.get(key) if isinstance(doc, Mapping) else None
    if not isinstance(records, list):
        raise UserError(f"{where}: expected a top-level object with an '{key}' list (COCO format)")
    for n, record in enumerate(records):
        missing = [f for f in fields if not isinstance(record, Mapping) or f not in record]
        if missing:
            raise UserError(f"{where}: {key}[{n}] has no {', '.join(repr(f) for f in missing)}")
    return records


def load_coco(
    annotations: str | Path,
    images_dir: str | Path | None,
    size: int,
    keep_aspect: bool,
    skip_bad_images: bool = False,
) -> list[CaptionedImage]:
    """Images with their captions from a COCO-captions annotations file.

    ``images_dir`` holds the files named by ``images[].file_name`` (default: the folder of
    the annotations file).
    """
    annotations = Path(annotations)
    doc = read_json(annotations, "annotations file")
    folder = existing_path(images_dir or annotations.parent, "folder", "images folder")
    images = _records(doc, "images", ("id", "file_name"), annotations)
    captions: dict[Any, list[str]] = {}
    for record in images:
        if record["id"] in captions:
            raise UserError(f"{annotations}: image id {record['id']!r} appears twice in 'images'")
        captions[record["id"]] = []
    for n, record in enumerate(_records(doc, "annotations", ("image_id", "caption"), annotations)):
        where = f"{annotations}: annotations[{n}]"
        if record["image_id"] not in captions:
            raise UserError(f"{where} refers to image id {record['image_id']!r}, not in 'images'")
        caption = record["caption"]
        if not isinstance(caption, str) or not caption.strip():
            raise UserError(f"{where}: 'caption' must be a non-empty string")
        captions[record["image_id"]].append(caption.strip())
    loaded, skipped, uncaptioned = [], [], 0
    for record in images:
        if not captions[record["id"]]:
            uncaptioned += 1
            continue
        path = folder / str(record["file_name"])
        try:
            pixels = load_image(path, size, keep_aspect)
        except UserError as error:
            if not skip_bad_images:
                raise UserError(f"{error} (set task.data.skip_bad_images=true to skip)") from None
            skipped.append(str(error))
            continue
        loaded.append(CaptionedImage(str(record["id"]), pixels, tuple(captions[record["id"]])))
    if uncaptioned:
        log.warning("%s: %d image(s) without captions left out", annotations, uncaptioned)
    for reason in skipped:
        log.warning("skipped: %s", reason)
    if not loaded:
        raise UserError(f"{annotations}: no captioned image could be loaded")
    return loaded


def rows_to_images(
    rows: Iterable[Mapping[str, Any]],
    image_column: str,
    caption_column: str,
    size: int,
    keep_aspect: bool,
    source: str,
) -> list[CaptionedImage]:
    """Rows with a PIL image column and a caption column (one string or a list of them)."""
    loaded = []
    for n, row in enumerate(rows):
        where = f"{source}: row {n}"
        for column in (image_column, caption_column):
            if column not in row:
                raise UserError(f"{where} has no column {column!r}; columns: {', '.join(row)}")
        image, captions = row[image_column], row[caption_column]
        captions = [captions] if isinstance(captions, str) else list(captions or [])
        captions = [c.strip() for c in captions if isinstance(c, str) and c.strip()]
        if not captions:
            raise UserError(f"{where}: column {caption_column!r} holds no caption")
        if not isinstance(image, Image.Image):
            raise UserError(f"{where}: column {image_column!r} is not an image")
        loaded.append(CaptionedImage(f"{n}", resize(image, size, keep_aspect), tuple(captions)))
    if not loaded:
        raise UserError(f"{source} contains no rows")
    return loaded


def load_hf(
    name: str,
    split: str,
    config: str | None,
    image_column: str,
    caption_column: str,
    size: int,
    keep_aspect: bool,
) -> list[CaptionedImage]:
    """An image+text dataset from the Hugging Face hub (or its local cache)."""
    rows, source = load_hf_split(name, split, config)
    return rows_to_images(rows, image_column, caption_column, size, keep_aspect, source)

"""``captioning``: describe an image; the decoder cross-attends to its patches.

Data: embedded scenes of coloured shapes (default; offline, seeded, scene graphs cached with
a checksum and rendered at the configured resolution), a COCO-captions folder, or an
image+text dataset through HF ``datasets``.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from functools import partial

import xbench
from xbench.api.errors import UserError
from xbench.api.options import option
from xbench.api.task import Task, TaskSpec
from xbench.taskkit.cache import cached_json
from xbench.taskkit.data import split_val_test
from xbench.taskkit.hf import HFSourceOptions
from xbench.taskkit.options import LoaderOptions, SplitOptions, data_source, with_default
from xbench.taskkit.text import WordTokenizer
from xbench.taskkit.truncation import truncation_warnings
from xbench_tasks.captioning.captions import references
from xbench_tasks.captioning.data import CaptionedImage, EncodedCaptions, collate
from xbench_tasks.captioning.frontend import (
    PatchFrontend,
    patch_grid,
    patch_position,
    source_image,
)
from xbench_tasks.captioning.metrics import CAPTION_STATISTICS, caption_metrics
from xbench_tasks.captioning.render import object_mask, render
from xbench_tasks.captioning.scenes import GENERATOR_VERSION, SceneOptions, sample_split

__all__ = ["CaptioningOptions", "build_captioning", "load_images", "patch_grid", "patch_position"]

SPLIT_FRACTIONS = (0.8, 0.1)  # train, val of a single COCO file; the rest is test


@dataclass
class CaptionDataOptions(SplitOptions, HFSourceOptions):
    source: str = data_source("coco", "hf")
    # embedded scenes
    objects: int = option(
        4, help="objects per scene, each colour and shape once (see the scene docs)", min=2, max=4
    )
    grid: int = option(
        5, help="scene layout grid; objects sit in distinct columns of it", min=2, max=256
    )
    texture: float = option(0.0, help="fraction of striped objects (captioned)", min=0.0, max=1.0)
    counts: bool = option(
        False,
        help="add a count caption per image ('four shapes: one small and three large')",
    )
    occlusion: float = option(
        0.0, help="fraction of objects allowed to overlap earlier ones", min=0.0, max=1.0
    )
    describe: str = option(
        "scene",
        help="scene (every object from left to right, each pair's relation) | marked (the "
        "one object drawn on a white tile: find one cell among all the patches)",
        choices=("scene", "marked"),
    )
    heldout_pairs: int = option(
        1, help="colour-shape pairs never seen in training or validation", min=0, max=3
    )
    test_split: str = option(
        "iid",
        help="iid (scenes like training) | compositional (each has a held-out pair)",
        choices=("iid", "compositional"),
    )
    train_size: int = with_default(SplitOptions, "train_size", 8000)
    val_size: int = with_default(SplitOptions, "val_size", 300)
    test_size: int = with_default(SplitOptions, "test_size", 500)
    # real data
    train_path: str | None = option(None, help="coco: captions annotations JSON (training)")
    train_images: str | None = option(
        None, help="coco: folder of the training images (default: the JSON's folder)"
    )
    eval_path: str | None = option(
        None,
        help="coco: annotations JSON to evaluate on (halved: val, test); "
        "without it the training file is split 80/10/10",
    )
    eval_images: str | None = option(
        None, help="coco: folder of the evaluation images (default: the JSON's folder)"
    )
    skip_bad_images: bool = option(
        False, help="coco: skip missing or undecodable image files (with a warning)"
    )
    keep_aspect: bool = option(
        True, help="real data: scale the longer side to image_size (else squash to a square)"
    )
    hf_test_split: str | None = with_default(HFSourceOptions, "hf_test_split", None)
    hf_image_column: str = option("image", help="hf: column holding the image")
    hf_text_column: str = option("caption", help="hf: column of a caption or caption list")
    max_vocab: int = option(10000, help="word vocabulary cap", min=16)


@dataclass
class CaptioningOptions(LoaderOptions):
    data: CaptionDataOptions = field(default_factory=CaptionDataOptions)
    image_size: int = option(
        60, help="image side in pixels (real images: the longer side)", min=4, max=4096
    )
    patch_size: int = option(
        12, help="patch side in pixels; encoder length = (image_size/patch_size)^2", min=1
    )
    max_target_tokens: int = with_default(LoaderOptions, "max_target_tokens", 24)  # captions
    train_caption: str = option(
        "auto",
        help="training target: first (an image's first reference) | random (a reference "
        "drawn afresh each time) | auto (first on embedded scenes, random on real data)",
        choices=("auto", "first", "random"),
    )


def _scene_key(scene: dict) -> str:
    """A scene's layout: its objects with their attributes and grid cells. Splits never
    share one (with few words, captions do repeat across splits: what is tested is
    reading them off images never seen)."""
    grid = scene["grid"]
    cells = [
        (o["colour"], o["shape"], o["size"], o["texture"], int(o["x"] * grid), int(o["y"] * grid))
        for o in scene["objects"]
    ]
    if "marked" in scene:  # the same layout with another object marked is another scene
        return json.dumps([sorted(cells), cells[scene["marked"]]])
    return json.dumps(sorted(cells))


def _embedded(options: CaptioningOptions) -> tuple[dict[str, list[CaptionedImage]], dict]:
    data = options.data
    if data.test_split == "compositional" and not data.heldout_pairs:
        raise UserError("task.data.test_split=compositional needs task.data.heldout_pairs >= 1")
    if data.grid < data.objects:
        raise UserError(f"task.data.grid={data.grid} must be at least task.data.objects")
    marked = data.describe == "marked"
    if marked and data.counts:
        raise UserError("task.data.counts=true needs task.data.describe=scene")
    scenes = SceneOptions(
        data.objects,
        data.grid,
        data.texture,
        data.occlusion,
        data.heldout_pairs,
        data.seed,
        marked,
    )
    sizes = {"train": data.train_size, "val": data.val_size, "test": data.test_size}

    def build() -> dict:
        splits, seen = {}, set()
        for split in ("test", "val", "train"):  # evaluation splits first; train avoids them
            compositional = split == "test" and data.test_split == "compositional"
            candidates = sample_split(scenes, split, 2 * sizes[split], compositional)
            keyed = [(s, k) for s in candidates if (k := _scene_key(s)) not in seen]
            kept = [s for s, _ in keyed[: sizes[split]]]
            if len(kept) < sizes[split]:
                raise UserError(
                    f"task.data.{split}_size={sizes[split]} is more than the distinct layouts "
                    "left; lower it or raise task.data.grid"
                )
            rng = random.Random(f"{data.seed}/{split}/captions")
            splits[split] = [{**s, "captions": references(s, rng, data.counts)} for s in kept]
            seen |= {k for _, k in keyed[: sizes[split]]}
        return splits

    params = {
        "scenes": dataclasses.asdict(scenes),
        "sizes": sizes,
        "test_split": data.test_split,
        "counts": data.counts,
        "version": GENERATOR_VERSION,
    }
    raw, checksum = cached_json("captioning", params, build)
    images = {
        split: [
            CaptionedImage(
                f"{split}-{i}",
                render(s, options.image_size),
                tuple(s["captions"]),
                {o["shape"]: object_mask(o, options.image_size, s["grid"]) for o in s["objects"]},
            )
            for i, s in enumerate(rows)
        ]
        for split, rows in raw.items()
    }
    return images, {"source": "embedded", "params": params, "checksum": checksum}


def _split_one(images: list[CaptionedImage], seed: int) -> dict[str, list[CaptionedImage]]:
    if len(images) < 3:
        raise UserError("a single COCO file needs at least 3 captioned images (train, val, test)")
    order = random.Random(seed).sample(images, len(images))
    n_train = max(1, int(SPLIT_FRACTIONS[0] * len(order)))
    n_val = max(1, int(SPLIT_FRACTIONS[1] * len(order)))
    n_train = min(n_train, len(order) - n_val - 1)
    return {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }


def load_images(options: CaptioningOptions) -> tuple[dict[str, list[CaptionedImage]], dict]:
    """Images with captions per split, and what identifies their source (for the run record)."""
    data, size = options.data, options.image_size
    if data.source == "embedded":
        return _embedded(options)
    from xbench_tasks.captioning import real

    if data.source == "coco":
        if not data.train_path:
            raise UserError("task.data.source=coco needs task.data.train_path (annotations JSON)")
        load = dict(size=size, keep_aspect=data.keep_aspect, skip_bad_images=data.skip_bad_images)
        train = real.load_coco(data.train_path, data.train_images, **load)
        info = {"source": "coco", "train_path": data.train_path, "eval_path": data.eval_path}
        if not data.eval_path:
            return _split_one(train, data.seed), info
        evaluation = real.load_coco(data.eval_path, data.eval_images, **load)
        val, test = split_val_test(evaluation, data.eval_path)
        return {"train": train, "val": val, "test": test}, info
    columns = (data.hf_config, data.hf_image_column, data.hf_text_column)
    splits = data.load_hf_splits(
        lambda split: real.load_hf(data.hf_name, split, *columns, size, data.keep_aspect)
    )
    return splits, {"source": "hf", "name": data.hf_name}


def build_captioning(options: CaptioningOptions) -> Task:
    if options.patch_size > options.image_size:
        raise UserError(
            f"task.patch_size={options.patch_size} must not exceed "
            f"task.image_size={options.image_size}"
        )
    splits, info = load_images(options)
    tokenizer = WordTokenizer.from_texts(
        (c for image in splits["train"] for c in image.captions), max_size=options.data.max_vocab
    )
    sample = options.train_caption == "random" or (
        options.train_caption == "auto" and info["source"] != "embedded"
    )
    encoded = {
        split: EncodedCaptions(
            images,
            tokenizer,
            options.max_target_tokens,
            sample and split == "train",
            options.patch_size,
        )
        for split, images in splits.items()
    }
    datamodule = options.datamodule(
        encoded, partial(collate, pad_id=tokenizer.pad_id, patch=options.patch_size)
    )
    grids = [patch_grid(*i.pixels.shape[:2], options.patch_size) for i in splits["test"]]
    info |= {
        "sizes": {split: len(images) for split, images in splits.items()},
        "vocab_size": tokenizer.vocab_size,
        "patch_grid": list(max(grids, key=lambda g: g[0] * g[1])),
    }
    patch = options.patch_size
    return Task(
        datamodule=datamodule,
        tokenizer=tokenizer,
        frontend=lambda d_model, embedding: PatchFrontend(d_model, patch),
        metrics=lambda: caption_metrics(scene_facts=info["source"] == "embedded"),
        primary_metric="cider",
        higher_is_better=True,
        source_length=max(rows * cols for rows, cols in grids),
        target_length=max(len(t) for targets in encoded["test"].targets for t in targets) - 1,
        max_new_tokens=options.max_target_tokens + 1,
        data_info=info,
        example_statistics=CAPTION_STATISTICS,
        source_image=partial(source_image, patch=patch),
        data_warnings=truncation_warnings(
            "task.max_target_tokens",
            options.max_target_tokens,
            {split: captions.caption_lengths for split, captions in encoded.items()},
            "captions",
        ),
    )


@xbench.hookimpl
def xbench_register_tasks(register):
    register(
        TaskSpec(
            name="captioning",
            modality="image",
            build=build_captioning,
            options=CaptioningOptions,
            description="Image captioning: describe rendered scenes (or COCO-format images) "
            "from their patches.",
        )
    )

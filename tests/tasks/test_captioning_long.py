"""Captioning at high resolution: the truncation warning of the caption cap, and the
marked-object captions of the long tier."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import composed_config

from xbench.api.errors import UserError
from xbench.registry import get_registry
from xbench.run.plan import plan_run
from xbench_tasks.captioning import (
    CaptionDataOptions,
    CaptioningOptions,
    build_captioning,
    load_images,
)
from xbench_tasks.captioning.captions import parse
from xbench_tasks.captioning.data import patch_positions

SMALL = CaptioningOptions(
    data=CaptionDataOptions(train_size=40, val_size=5, test_size=5),
    image_size=24,
    patch_size=6,
    batch_size=8,
)


def test_a_cap_that_cuts_captions_is_a_warning_with_the_count():
    full = build_captioning(SMALL)
    assert full.data_warnings == []
    cap = 12
    task = build_captioning(CaptioningOptions(**{**vars(SMALL), "max_target_tokens": cap}))
    lines = []
    for split in full.datamodule.splits:  # in the order the task built them
        captions = full.datamodule.splits[split].references
        words = [len(caption.split()) for references in captions for caption in references]
        cut = sum(n - cap > 0.1 * n for n in words)
        assert 0 < cut < len(words)  # the long list captions are cut, the short ones are not
        lines.append(
            f"task.max_target_tokens={cap} cut more than 10% off {cut} of {len(words)} "
            f"{split} captions ({cut / len(words):.0%})"
        )
    assert task.data_warnings == lines


MARKED = CaptioningOptions(
    data=CaptionDataOptions(describe="marked", grid=6, train_size=40, val_size=4, test_size=6),
    image_size=48,
    patch_size=8,
    batch_size=6,
    eval_batch_size=6,
)


def _cell_brightness(pixels, row: int, col: int, object_mask) -> float:
    """Mean brightness of a grid cell's pixels that the object does not cover."""
    cell = np.s_[row * 8 : (row + 1) * 8, col * 8 : (col + 1) * 8]
    return float(pixels[cell][~object_mask[cell]].mean())


def test_a_marked_scene_names_the_one_object_on_a_white_tile_and_aligns_to_its_patches():
    images, _ = load_images(MARKED)
    task = build_captioning(MARKED)
    batch = next(iter(task.datamodule.test_dataloader()))
    named = set()
    for index, image in enumerate(images["test"]):
        (caption,) = image.captions
        (mention,) = parse(caption).mentions
        shape = mention[3]
        named.add(shape)
        for other, mask in image.objects.items():
            rows, cols = np.nonzero(mask)
            row, col = int(rows.mean()) // 8, int(cols.mean()) // 8
            brightness = _cell_brightness(image.pixels, row, col, mask)
            assert (brightness > 200) == (other == shape), (caption, other, brightness)
        words = caption.split()
        aligned = batch["alignment"][index, 1 : len(words)]  # the words after "a"
        patches = patch_positions(image.objects[shape], 8)
        assert all(sorted(row.nonzero().flatten().tolist()) == patches for row in aligned)
    assert len(named) >= 3  # the mark falls on any object, not on one shape


def test_marked_captions_need_the_scene_description_for_counts():
    options = CaptioningOptions(
        **{**vars(MARKED), "data": dataclasses.replace(MARKED.data, counts=True)}
    )
    with pytest.raises(UserError, match="counts=true needs task.data.describe=scene"):
        build_captioning(options)


def test_the_caption_kind_is_validated():
    config = composed_config(["task=captioning", "task.data.describe=all"])
    with pytest.raises(UserError, match="describe"):
        plan_run(config, get_registry())

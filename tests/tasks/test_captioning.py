"""The captioning task: scenes, captions, rendering, frontend, splits and metrics."""

from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import pytest
import torch
from pycocoevalcap.cider.cider import Cider

from xbench.api.errors import UserError
from xbench.config.settings import ModelSettings
from xbench.run.model import EncoderDecoder
from xbench_plugins.naive import NaiveAttention
from xbench_tasks.captioning import (
    CaptionDataOptions,
    CaptioningOptions,
    build_captioning,
    load_images,
)
from xbench_tasks.captioning.captions import (
    facts_of,
    parse,
    references,
    relation,
    scene_mentions,
    scene_relations,
)
from xbench_tasks.captioning.data import collate
from xbench_tasks.captioning.frontend import (
    PatchFrontend,
    patch_grid,
    patch_position,
    positions_2d,
    source_image,
)
from xbench_tasks.captioning.metrics import caption_metrics, caption_words
from xbench_tasks.captioning.render import RGB, render
from xbench_tasks.captioning.scenes import (
    COLOURS,
    SHAPES,
    SceneOptions,
    heldout_pairs,
    sample_split,
)

SCENES = SceneOptions(objects=3, grid=5, texture=0.3, occlusion=0.0, heldout_pairs=2, seed=5)
SMALL = CaptioningOptions(
    data=CaptionDataOptions(train_size=200, val_size=20, test_size=20),
    image_size=24,
    patch_size=6,
    batch_size=8,
)


def test_scenes_and_pixels_are_deterministic_and_seed_dependent():
    scenes = sample_split(SCENES, "train", 20)
    assert scenes == sample_split(SCENES, "train", 20)
    assert scenes != sample_split(dataclasses.replace(SCENES, seed=6), "train", 20)
    first = [render(s, 32) for s in scenes]
    again = [render(s, 32) for s in scenes]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert first[0].shape == (32, 32, 3) and first[0].dtype == np.uint8
    assert not np.array_equal(first[0], first[1])


@pytest.mark.parametrize("size", [60, 200])
def test_every_object_is_drawn_at_its_place_in_its_colour(size):
    options = dataclasses.replace(SCENES, texture=0.0)
    for scene in sample_split(options, "val", 20):
        image = render(scene, size).astype(float)
        for obj in scene["objects"]:
            row, col = int(obj["y"] * size), int(obj["x"] * size)
            assert np.abs(image[row, col] - RGB[obj["colour"]]).max() < 45, obj  # noise: σ 10


def test_larger_objects_cover_more_pixels():
    scene = {
        "objects": [
            {"shape": s, "colour": "red", "size": size, "texture": "plain", "x": 0.5, "y": 0.5}
            for s, size in [("square", "small")]
        ],
        "grid": 4,
        "background": 50,
        "noise_seed": 0,
    }
    small = (render(scene, 64)[..., 0] > 150).sum()
    scene["objects"][0]["size"] = "large"
    large = (render(scene, 64)[..., 0] > 150).sum()
    assert large > 2 * small > 0


@pytest.mark.parametrize("objects", [2, 3, 4])
def test_references_state_exactly_the_scene_graph(objects):
    options = dataclasses.replace(SCENES, objects=objects)
    rng = random.Random(0)
    for scene in sample_split(options, "train", 40):
        captions = references(scene, rng)
        facts = facts_of(captions)
        assert set(facts.mentions) == scene_mentions(scene)
        assert set(facts.relations) == scene_relations(scene)
        assert len(captions) == objects * (objects - 1) // 2 + 2
        left_to_right = sorted(scene["objects"], key=lambda o: o["x"])
        listed = [m[2:] for m in parse(captions[0]).mentions]
        assert listed == [(o["colour"], o["shape"]) for o in left_to_right]
        assert captions[1] == "from left to right: " + captions[0]


def test_the_count_caption_counts_the_objects_of_each_size():
    rng = random.Random(0)
    for scene in sample_split(dataclasses.replace(SCENES, objects=4), "train", 20):
        plain, counted = references(scene, rng), references(scene, random.Random(0), True)
        assert counted[: len(plain)] == references(scene, random.Random(0))
        large = sum(o["size"] == "large" for o in scene["objects"])
        words = {0: None, 1: "one", 2: "two", 3: "three", 4: "four"}
        parts = [f"{words[n]} {size}" for n, size in ((4 - large, "small"), (large, "large")) if n]
        assert counted[-1] == "four shapes: " + " and ".join(parts)
        assert facts_of(counted) == facts_of(plain)  # a count names no object


def test_relation_follows_the_dominant_axis():
    a = {"x": 0.2, "y": 0.5}
    assert relation(a, {"x": 0.8, "y": 0.6}) == "left of"
    assert relation(a, {"x": 0.1, "y": 0.45}) == "right of"
    assert relation(a, {"x": 0.3, "y": 0.9}) == "above"
    assert relation(a, {"x": 0.25, "y": 0.1}) == "below"


def test_parse_reads_mentions_and_relations():
    facts = parse("There is a small striped red circle left of a blue square.")
    assert facts.mentions == (("small", "striped", "red", "circle"), (None, None, "blue", "square"))
    assert facts.relations == (
        (("small", "striped", "red", "circle"), "left of", (None, None, "blue", "square")),
    )
    assert parse("two circles and one square") == parse("")


def test_heldout_pairs_stay_out_of_training_and_fill_the_compositional_split():
    held = set(heldout_pairs(SCENES))
    assert len(held) == 2 and len({s for _, s in held}) == len({c for c, _ in held}) == 2
    train = sample_split(SCENES, "train", 300)
    pairs = {(o["colour"], o["shape"]) for s in train for o in s["objects"]}
    assert not pairs & held
    assert {c for c, _ in pairs} == set(COLOURS[:3]) and {s for _, s in pairs} == set(SHAPES[:3])
    for scene in sample_split(SCENES, "test", 50, compositional=True):
        assert {(o["colour"], o["shape"]) for o in scene["objects"]} & held


@pytest.mark.parametrize("objects", [2, 4])
def test_every_scene_holds_the_palette_once_in_distinct_columns(objects):
    options = dataclasses.replace(SCENES, objects=objects, heldout_pairs=1)
    for scene in sample_split(options, "train", 50):
        found = scene["objects"]
        assert sorted(o["colour"] for o in found) == sorted(COLOURS[:objects])
        assert sorted(o["shape"] for o in found) == sorted(SHAPES[:objects])
        columns = {int(o["x"] * scene["grid"]) for o in found}
        assert len(columns) == objects
        for o in found:
            assert 0 < o["x"] < 1 and 0 < o["y"] < 1
        assert len({relation(a, b) for a in found for b in found if a is not b}) >= 2


def _layouts(scenes):
    return {
        tuple(
            sorted(
                (o["colour"], o["shape"], o["size"], int(5 * o["x"]), int(5 * o["y"]))
                for o in s["objects"]
            )
        )
        for s in scenes
    }


@pytest.mark.parametrize("test_split", ["iid", "compositional"])
def test_embedded_splits_are_sized_disjoint_and_cached(test_split, tmp_path):
    options = dataclasses.replace(
        SMALL, data=dataclasses.replace(SMALL.data, test_split=test_split)
    )
    splits, info = load_images(options)
    assert {k: len(v) for k, v in splits.items()} == {"train": 200, "val": 20, "test": 20}
    assert len(info["checksum"]) == 64
    files = list((tmp_path / "cache" / "captioning").glob("*.json"))
    assert len(files) == 1
    cached = json.loads(files[0].read_text())["data"]
    layouts = {split: _layouts(scenes) for split, scenes in cached.items()}
    assert not layouts["train"] & layouts["test"] and not layouts["train"] & layouts["val"]
    assert not layouts["val"] & layouts["test"]
    assert [list(i.captions) for i in splits["val"]] == [s["captions"] for s in cached["val"]]
    files[0].write_text(files[0].read_text().replace("circle", "oval"))
    again, info_again = load_images(options)
    assert info_again["checksum"] == info["checksum"]
    assert [i.captions for i in again["train"]] == [i.captions for i in splits["train"]]
    assert all(
        np.array_equal(a.pixels, b.pixels)
        for a, b in zip(again["test"], splits["test"], strict=True)
    )


def test_options_that_cannot_work_are_user_errors():
    no_heldout = CaptionDataOptions(test_split="compositional", heldout_pairs=0)
    with pytest.raises(UserError, match="heldout_pairs"):
        build_captioning(CaptioningOptions(data=no_heldout))
    with pytest.raises(UserError, match="grid=2 must be at least"):
        build_captioning(CaptioningOptions(data=CaptionDataOptions(grid=2)))
    with pytest.raises(UserError, match="patch_size=32 must not exceed"):
        build_captioning(CaptioningOptions(image_size=16, patch_size=32))
    with pytest.raises(UserError, match="train_path"):
        build_captioning(CaptioningOptions(data=CaptionDataOptions(source="coco")))


def test_built_task_batches_follow_the_contract():
    task = build_captioning(SMALL)
    batch = next(iter(task.datamodule.train_dataloader()))
    pixels, sizes = batch["source"]["pixels"], batch["source"]["sizes"]
    assert pixels.shape == (8, 3, 24, 24) and pixels.dtype == torch.uint8
    assert sizes.tolist() == [[24, 24]] * 8
    tok = task.tokenizer
    assert (batch["target"][:, 0] == tok.bos_id).all()
    for row, refs in zip(batch["target"], batch["references"], strict=True):
        assert tok.decode(row[1:].tolist()) == refs[0]  # embedded: the canonical list
    drawn = build_captioning(dataclasses.replace(SMALL, train_caption="random"))
    targets = {
        drawn.tokenizer.decode(drawn.datamodule.splits["train"][0][1][1:]) for _ in range(30)
    }
    assert len(targets) > 1 and targets <= set(drawn.datamodule.splits["train"].references[0])
    x, mask = task.frontend(16, None)(batch["source"])
    assert x.shape == (8, 16, 16) and mask.all()
    assert task.source_length == 16 and task.primary_metric == "cider"
    test = next(iter(task.datamodule.test_dataloader()))
    assert task.target_length >= test["target"].shape[1] - 1


def _image(height, width, seed):
    return torch.randint(0, 256, (3, height, width), generator=torch.Generator().manual_seed(seed))


def test_padding_mask_and_packing_of_mixed_sizes():
    frontend = PatchFrontend(8, patch=4)
    small, large = _image(8, 12, 0).byte(), _image(16, 18, 1).byte()  # grids 2×3 and 4×5
    batch = collate([(small, [1], ["a"], None), (large, [1], ["b"], None)], pad_id=0)["source"]
    x, mask = frontend(batch)
    assert x.shape[1] == 20
    assert mask[0].tolist() == [True] * 6 + [False] * 14 and mask[1].all()
    assert (x[0, 6:] == 0).all()
    alone, alone_mask = frontend(collate([(small, [1], ["a"], None)], pad_id=0)["source"])
    assert alone_mask.all() and torch.allclose(alone[0], x[0, :6], atol=1e-6)


def test_patch_position_names_the_patch_an_encoder_position_holds():
    frontend = PatchFrontend(8, patch=4)
    image = _image(10, 13, 2).byte()  # 3 × 4 patches, the last row and column partial
    assert patch_grid(10, 13, 4) == (3, 4)
    x, mask = frontend(collate([(image, [1], ["a"], None)], pad_id=0)["source"])
    padded = torch.zeros(3, 12, 16)
    padded[:, :10, :13] = image.float()
    codes = positions_2d(3, 4, 8)
    for position in range(12):
        row, col = patch_position(position, 10, 13, 4)
        crop = padded[:, 4 * row : 4 * row + 4, 4 * col : 4 * col + 4] / 127.5 - 1
        expected = frontend.embed(crop[None])[0, :, 0, 0] + codes[row, col]
        assert torch.allclose(x[0, position], expected, atol=1e-5)
    with pytest.raises(IndexError):
        patch_position(12, 10, 13, 4)


def test_source_image_gives_each_picture_unpadded_with_the_grid_of_its_positions():
    small, large = _image(8, 12, 5).byte(), _image(16, 18, 6).byte()
    source = collate([(small, [1], ["a"], None), (large, [1], ["b"], None)], pad_id=0)["source"]
    _, mask = PatchFrontend(8, patch=4)(source)
    for i, image in enumerate((small, large)):
        picture, (rows, cols) = source_image(source, i, patch=4)
        assert picture.dtype == np.uint8
        assert np.array_equal(picture, image.permute(1, 2, 0).numpy())
        assert rows * cols == int(mask[i].sum())
    task = build_captioning(SMALL)
    batch = next(iter(task.datamodule.val_dataloader()))
    picture, grid = task.source_image(batch["source"], 0)
    assert picture.shape == (24, 24, 3) and grid == (4, 4)


def test_a_small_images_encoder_outputs_do_not_change_in_a_padded_batch():
    torch.manual_seed(0)
    config = ModelSettings(d_model=16, heads=2, encoder_layers=2, decoder_layers=1, ffn_dim=32)
    model = EncoderDecoder(config, 10, 0, lambda d, e: PatchFrontend(d, 4), NaiveAttention)
    small, large = _image(8, 10, 3).byte(), _image(20, 16, 4).byte()
    batched, mask = model.encode(
        collate([(small, [1], ["a"], None), (large, [1], ["b"], None)], 0)["source"]
    )
    alone, _ = model.encode(collate([(small, [1], ["a"], None)], 0)["source"])
    real = alone[0].keys
    assert real == 6 and mask[0].sum() == real and mask[1].all()
    for batched_kv, alone_kv in ((batched[0].k, alone[0].k), (batched[0].v, alone[0].v)):
        assert torch.allclose(batched_kv[0, :, :real], alone_kv[0], atol=1e-5)


def _scores(predictions, references, scene_facts=True):
    metrics = caption_metrics(scene_facts)
    metrics.update(predictions, references)
    return {k: float(v) for k, v in metrics.compute().items()}


def test_cider_is_pycocoevalcaps_on_the_same_tokens():
    predictions = ["A small red circle.", "a blue square left of a cat", "two dogs"]
    references = [
        ["a small red circle", "there is a red circle"],
        ["a blue square left of a green circle", "a square, blue"],
        ["three dogs play", "two dogs", "dogs !"],
    ]
    metrics = caption_metrics(False)
    metrics.update(predictions[:2], references[:2])  # two batches, one corpus
    metrics.update(predictions[2:], references[2:])
    ours = float(metrics.compute()["cider"])
    expected, _ = Cider().compute_score(
        {i: [caption_words(r) for r in refs] for i, refs in enumerate(references)},
        {i: [caption_words(p)] for i, p in enumerate(predictions)},
    )
    assert ours == pytest.approx(expected) and 0 < ours < 10
    assert caption_words("A small, RED circle.") == "a small red circle"


def test_identical_captions_score_cider_ten_and_bleu_one():
    captions = ["a small red circle left of a large blue square", "two green triangles here"]
    scores = _scores(captions, [[c] for c in captions], scene_facts=False)
    assert scores["cider"] == pytest.approx(10.0) and scores["bleu4"] == pytest.approx(1.0)
    assert set(scores) == {"cider", "bleu4"}
    assert _scores(["nothing alike"], [["a red circle"]], False)["cider"] == 0.0


def test_scene_accuracy_checks_attributes_and_relations_against_the_scene():
    scene = {
        "objects": [
            {"shape": "circle", "colour": "red", "size": "small", "texture": "plain",
             "x": 0.2, "y": 0.5},
            {"shape": "square", "colour": "blue", "size": "large", "texture": "plain",
             "x": 0.8, "y": 0.45},
        ],
    }  # fmt: skip
    refs = references(scene, random.Random(0))
    predictions = [
        "a small red circle left of a large blue square",  # 2 right mentions, a true relation
        "a red square right of a blue square",  # red square wrong, blue square right; false
        "a large red circle",  # wrong size
    ]
    scores = _scores(predictions, [refs] * 3)
    assert scores["attributes"] == pytest.approx(3 / 5)
    assert scores["relations"] == pytest.approx(1 / 2)

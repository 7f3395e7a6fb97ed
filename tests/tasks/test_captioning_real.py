"""Real captioning data: COCO-format folders (with broken files) and HF-style rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.images import coco_folder, picture
from PIL import Image

from xbench.api.errors import UserError
from xbench_tasks.captioning import CaptionDataOptions, CaptioningOptions, build_captioning
from xbench_tasks.captioning.real import load_coco, rows_to_images, to_rgb


def _rewrite(annotations, change):
    doc = json.loads(annotations.read_text())
    change(doc)
    annotations.write_text(json.dumps(doc))


def test_coco_folder_loads_every_mode_as_rgb_resized(tmp_path):
    annotations = coco_folder(tmp_path / "coco", uncaptioned=1)
    images = load_coco(annotations, None, size=16, keep_aspect=True)
    assert len(images) == 6  # the uncaptioned image is left out
    for image in images:
        assert image.pixels.dtype == np.uint8 and image.pixels.shape[2] == 3
        assert max(image.pixels.shape[:2]) == 16
        assert len(image.captions) == 2
    first = images[0]  # img0: 20 wide, 30 high
    assert first.pixels.shape == (16, 11, 3) and first.captions[0] == "picture 0 take 0"
    squashed = load_coco(annotations, None, size=16, keep_aspect=False)
    assert all(i.pixels.shape == (16, 16, 3) for i in squashed)


def test_transparent_pixels_become_white_and_grey_stays_grey():
    rgba = Image.new("RGBA", (2, 1), (10, 20, 30, 255))
    rgba.putpixel((1, 0), (10, 20, 30, 0))
    assert np.asarray(to_rgb(rgba)).tolist() == [[[10, 20, 30], [255, 255, 255]]]
    grey = Image.new("L", (1, 1), 77)
    assert np.asarray(to_rgb(grey)).tolist() == [[[77, 77, 77]]]
    palette = Image.new("P", (1, 1), 0)
    palette.putpalette([200, 100, 50] + [0] * 765)
    assert np.asarray(to_rgb(palette)).tolist() == [[[200, 100, 50]]]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda folder: (folder / "img2.png").unlink(), "image file not found: .*img2.png"),
        (lambda folder: (folder / "img3.png").write_bytes(b"not a png"), "cannot decode .*img3"),
        (
            lambda folder: (folder / "img1.png").write_bytes(
                (folder / "img1.png").read_bytes()[:60]
            ),
            "cannot decode .*img1",
        ),
    ],
)
def test_a_bad_image_file_is_named_or_skipped_on_request(damage, message, tmp_path):
    annotations = coco_folder(tmp_path / "coco")
    damage(tmp_path / "coco")
    with pytest.raises(UserError, match=message + ".*skip_bad_images"):
        load_coco(annotations, None, size=16, keep_aspect=True)
    kept = load_coco(annotations, None, size=16, keep_aspect=True, skip_bad_images=True)
    assert len(kept) == 5


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["annotations"].append({"image_id": 999, "caption": "x"}), "image id 999"),
        (lambda d: d["images"].append(dict(d["images"][0])), "appears twice"),
        (lambda d: d["annotations"][0].update(caption=""), r"annotations\[0\]: 'caption'"),
        (lambda d: d["images"][0].pop("file_name"), r"images\[0\] has no 'file_name'"),
        (lambda d: d.pop("annotations"), "'annotations' list"),
    ],
)
def test_broken_annotations_are_user_errors_naming_the_record(change, message, tmp_path):
    annotations = coco_folder(tmp_path / "coco")
    _rewrite(annotations, change)
    with pytest.raises(UserError, match=message):
        load_coco(annotations, None, size=16, keep_aspect=True, skip_bad_images=True)


def test_missing_or_invalid_annotation_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="annotations file not found"):
        load_coco(tmp_path / "none.json", None, size=16, keep_aspect=True)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        load_coco(tmp_path / "bad.json", None, size=16, keep_aspect=True)


def _coco_options(**data) -> CaptioningOptions:
    return CaptioningOptions(
        data=CaptionDataOptions(source="coco", **data), image_size=16, patch_size=4, batch_size=4
    )


def test_one_coco_file_is_split_into_train_val_test(tmp_path):
    annotations = coco_folder(tmp_path / "coco", count=10)
    task = build_captioning(_coco_options(train_path=str(annotations)))
    assert task.data_info["sizes"] == {"train": 8, "val": 1, "test": 1}
    assert set(task.metrics().keys()) == {"cider", "bleu4"}  # no scene graph for real data
    batch = next(iter(task.datamodule.train_dataloader()))
    x, mask = task.frontend(8, None)(batch["source"])
    real = [int(np.ceil(h / 4) * np.ceil(w / 4)) for h, w in batch["source"]["sizes"].tolist()]
    assert mask.sum(1).tolist() == real and x.shape[1] == max(real)


def test_separate_eval_file_in_its_own_folder_is_halved(tmp_path):
    train = coco_folder(tmp_path / "train", count=4)
    evaluation = coco_folder(tmp_path / "eval" / "annotations", count=4)
    (tmp_path / "eval" / "pictures").mkdir()
    for png in (tmp_path / "eval" / "annotations").glob("img*"):
        png.rename(tmp_path / "eval" / "pictures" / png.name)
    options = _coco_options(
        train_path=str(train),
        eval_path=str(evaluation),
        eval_images=str(tmp_path / "eval" / "pictures"),
    )
    assert build_captioning(options).data_info["sizes"] == {"train": 4, "val": 2, "test": 2}


def test_hf_style_rows_take_a_caption_or_a_list():
    rows = [
        {"image": picture("L", 10, 20, 0), "caption": "one caption"},
        {"image": picture("RGBA", 20, 10, 1), "caption": ["first", "second"]},
    ]
    images = rows_to_images(rows, "image", "caption", 8, True, "rows")
    assert [i.captions for i in images] == [("one caption",), ("first", "second")]
    assert images[0].pixels.shape == (8, 4, 3) and images[1].pixels.shape == (4, 8, 3)
    with pytest.raises(UserError, match="no column 'text'"):
        rows_to_images(rows, "image", "text", 8, True, "rows")
    with pytest.raises(UserError, match="row 0: column 'caption' holds no caption"):
        rows_to_images(
            [{"image": rows[0]["image"], "caption": []}], "image", "caption", 8, True, "rows"
        )

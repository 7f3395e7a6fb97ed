"""Shared test helpers: composing xbench's Hydra config without the CLI, small real-format
data folders."""

from __future__ import annotations

import json

import numpy as np
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from PIL import Image

from xbench.config.compose import CONFIG_NAME, store_plugin_configs
from xbench.registry import Registry, get_registry


def composed_config(overrides: list[str], registry: Registry | None = None) -> dict:
    """The resolved config ``xbench run`` would use (minus Hydra's own node)."""
    store_plugin_configs(registry or get_registry())
    with initialize_config_module(config_module="xbench_configs", version_base="1.3"):
        cfg = compose(CONFIG_NAME, overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


# Options that make the embedded QA data and model small enough for a few seconds' run.
SMALL_QA = [
    "task.data.train_size=128",
    "task.data.val_size=16",
    "task.data.test_size=16",
    "task.batch_size=16",
    "task.eval_batch_size=16",
]

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

"""The captioning task through the runner: fast_dev_run on embedded scenes and on a COCO
folder given by configuration alone."""

from __future__ import annotations

import pytest
from helpers import composed_config
from helpers.images import coco_folder

from xbench.registry import get_registry
from xbench.run.plan import plan_run
from xbench.run.runner import execute

TINY = [
    "task=captioning",
    "trainer=debug",
    "logger=none",
    "task.image_size=24",
    "task.patch_size=6",
    "task.batch_size=8",
    "task.eval_batch_size=8",
]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["naive", "uniform"])
def test_fast_dev_run_on_embedded_scenes(backend, tmp_path):
    sizes = ["task.data.train_size=64", "task.data.val_size=8", "task.data.test_size=8"]
    config = composed_config([f"backend={backend}", *TINY, *sizes])
    result = execute(plan_run(config, get_registry()), tmp_path)
    assert result.status == "ok", result.error
    assert set(result.quality.metrics) == {"cider", "bleu4", "attributes", "relations"}
    assert result.quality.primary_metric == "cider" and result.quality.primary >= 0
    assert result.task.source_length == 16
    assert result.efficiency.cross_attention.prefill.shape.nk == 16


@pytest.mark.slow
def test_fast_dev_run_on_a_coco_folder(tmp_path):
    annotations = coco_folder(tmp_path / "coco", count=12)
    overrides = [
        "backend=flash",
        *TINY,
        "task.data.source=coco",
        f"task.data.train_path={annotations}",
    ]
    result = execute(plan_run(composed_config(overrides), get_registry()), tmp_path / "run")
    assert result.status == "ok", result.error
    assert set(result.quality.metrics) == {"cider", "bleu4"}
    assert result.task.data["sizes"] == {"train": 9, "val": 1, "test": 2}

"""Cross-attention heatmaps: the weights each backend applies, their PNG files and the
overlay on an image task's pictures."""

from __future__ import annotations

import functools
import math

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import SMALL_QA, composed_config
from matplotlib.image import imread
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics import MetricCollection

from xbench.api.backend import AttentionBackend, PreparedMemory, QueryPositions
from xbench.api.errors import UserError
from xbench.api.options import build_options
from xbench.api.task import Task
from xbench.config.settings import HeatmapSettings, ModelSettings, OptimSettings
from xbench.registry import get_registry
from xbench.run.heatmap_plots import upsample_to_image
from xbench.run.heatmaps import (
    AttentionHeatmaps,
    attention_maps,
    cross_attention_weights,
    first_examples,
    generated_length,
    heatmap_callbacks,
    write_heatmaps,
)
from xbench.run.model import EncoderDecoder
from xbench.run.module import Seq2SeqModule
from xbench.run.plan import plan_run
from xbench.run.runner import execute
from xbench.taskkit.text import TokenFrontend, WordTokenizer

BUILTIN_BACKENDS = ("naive", "flash", "sparse", "linear", "uniform")
WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]
TINY = ModelSettings(d_model=32, heads=4, encoder_layers=1, decoder_layers=2, ffn_dim=64)


def _backend(name: str):
    """A factory of the backend with default options: one instance per decoder layer."""
    spec = get_registry().backend(name)
    return functools.partial(spec.build, build_options(spec.options, {}, "backend"))


def _text_model(backend_name: str = "naive", seed: int = 0) -> EncoderDecoder:
    torch.manual_seed(seed)
    tokenizer = WordTokenizer(WORDS)
    return EncoderDecoder(
        TINY,
        tokenizer.vocab_size,
        tokenizer.pad_id,
        lambda d_model, embedding: TokenFrontend(embedding, tokenizer.pad_id),
        _backend(backend_name),
    )


def _padded_sources(lengths: list[int], vocab: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    source = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        source[i, :n] = torch.randint(4, vocab, (n,), generator=generator)
    return source


@pytest.mark.parametrize("backend", BUILTIN_BACKENDS)
def test_rows_sum_to_one_over_real_keys_and_padded_keys_get_zero(backend):
    model = _text_model(backend).eval()
    source = _padded_sources([9, 5, 2], model.embedding.num_embeddings)
    prompt = torch.tensor([[0, 5, 6], [7, 8, 9], [0, 0, 4]])
    generated = torch.randint(4, model.embedding.num_embeddings, (3, 6))
    with torch.no_grad():
        weights, mask = cross_attention_weights(model, source, generated, 1, prompt)
    assert weights.shape == (3, 6, 9), "one row per generated token, prompt left out"
    assert torch.equal(mask, source != 0)
    real_sums = (weights * mask[:, None, :]).sum(-1)
    torch.testing.assert_close(real_sums, torch.ones_like(real_sums), atol=1e-4, rtol=0)
    assert weights.masked_select(~mask[:, None, :].expand_as(weights)).abs().max() == 0


def test_examples_limits_the_items_weighed():
    model = _text_model().eval()
    source = _padded_sources([4, 4, 4, 4], model.embedding.num_embeddings)
    with torch.no_grad():
        weights, mask = cross_attention_weights(model, source, source[:, :3], 1, examples=2)
    assert weights.shape == (2, 3, 4) and mask.shape == (2, 4)


def test_a_row_is_the_weights_of_the_query_that_produced_its_token():
    """Row t comes from the query whose input is token t-1 (BOS first), after the prompt:
    changing generated token 1 changes row 2 on, never the rows before it."""
    model = _text_model(seed=3).eval()
    source = _padded_sources([7], model.embedding.num_embeddings)
    prompt = torch.tensor([[4, 5, 6]])
    first = torch.tensor([[5, 6, 7, 8]])
    second = torch.tensor([[5, 9, 7, 8]])
    with torch.no_grad():
        a, _ = cross_attention_weights(model, source, first, 1, prompt)
        b, _ = cross_attention_weights(model, source, second, 1, prompt)
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2], b[:, 2])


class ColumnAttention(AttentionBackend):
    """Position-dependent: a query reads only the key at its decoder column modulo Nk, so
    a map shows which columns the backend was told its queries sit at."""

    def attend_weights(self, q, memory, positions=None):
        positions = positions or QueryPositions.whole(q.shape[2])
        columns = torch.arange(positions.start, positions.start + q.shape[2]) % memory.keys
        return F.one_hot(columns, memory.keys).to(q.dtype).expand(*q.shape[:2], -1, -1)

    def attend(self, q, memory, positions=None):
        return self.attend_weights(q, memory, positions) @ memory.v

    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        return self.attend(q, PreparedMemory(k, v, key_padding_mask, scale))


def test_maps_show_the_weights_at_the_columns_the_generated_tokens_were_written_at():
    torch.manual_seed(0)
    tokenizer = WordTokenizer(WORDS)
    model = EncoderDecoder(
        TINY, tokenizer.vocab_size, 0, lambda d, e: TokenFrontend(e, 0), ColumnAttention
    ).eval()
    source = _padded_sources([9], model.embedding.num_embeddings)
    prompt = torch.tensor([[0, 5, 6]])  # width 3: the first target row is column 3
    with torch.no_grad():
        weights, _ = cross_attention_weights(model, source, torch.tensor([[5, 6, 7, 8]]), 1, prompt)
    assert weights[0].argmax(dim=-1).tolist() == [3, 4, 5, 6]


def test_generated_length_stops_after_the_first_eos():
    assert generated_length(torch.tensor([5, 6, 2, 0, 0]), eos_id=2) == 3
    assert generated_length(torch.tensor([5, 6, 7]), eos_id=2) == 3


def test_only_the_drawn_examples_are_cut_from_the_batch():
    frames, lengths, step = torch.randn(5, 7, 3), torch.tensor([7, 6, 5, 4, 3]), torch.tensor(2)
    batch = {
        "source": {"audio": (frames, lengths), "step": step},
        "prompt": torch.ones(5, 2, dtype=torch.long),
        "target": torch.ones(5, 4, dtype=torch.long),
        "references": [["a"], ["b"], ["c"], ["d"], ["e"]],
    }
    cut = first_examples(batch, 2)
    assert torch.equal(cut["source"]["audio"][0], frames[:2])
    assert torch.equal(cut["source"]["audio"][1], lengths[:2])
    assert cut["source"]["step"] is step, "a tensor without the batch dimension stays whole"
    assert cut["prompt"].shape == (2, 2) and cut["target"].shape == (2, 4)
    assert cut["references"] == [["a"], ["b"]] and len(batch["references"]) == 5


def test_maps_of_the_cut_batch_equal_those_of_the_whole_batch():
    model = _text_model(seed=5).eval()
    source = _padded_sources([8, 3, 6, 2, 7], model.embedding.num_embeddings, seed=1)
    prompt = torch.tensor([[0, 4], [5, 6], [0, 7], [8, 9], [0, 4]])
    with torch.no_grad():
        ids = model.generate(source, 1, 2, 5, prompt)
        whole, _ = cross_attention_weights(model, source, ids, 1, prompt, examples=2)
        cut = first_examples({"source": source, "prompt": prompt}, 2)
        cut_ids = model.generate(cut["source"], 1, 2, 5, cut["prompt"])
        part, _ = cross_attention_weights(model, cut["source"], cut_ids, 1, cut["prompt"])
    assert torch.equal(ids[:2], cut_ids)
    torch.testing.assert_close(whole, part)


def _module(task: Task, model: EncoderDecoder) -> Seq2SeqModule:
    return Seq2SeqModule(model, task, OptimSettings(), total_steps=10).eval()


def test_text_maps_label_rows_with_generated_tokens_and_columns_with_source_words():
    tokenizer = WordTokenizer(WORDS)
    model = _text_model()
    task = Task(
        datamodule=L.LightningDataModule(),
        tokenizer=tokenizer,
        frontend=None,
        metrics=lambda: None,
        primary_metric="f1",
        higher_is_better=True,
        source_length=6,
        target_length=5,
    )
    source = torch.tensor([tokenizer.encode("the cat sat on a mat"), [4, 5, 6, 0, 0, 0]])
    with torch.no_grad():
        maps = attention_maps(_module(task, model), {"source": source}, "text", examples=2)
    assert [m.source for m in maps] == [
        ["the", "cat", "sat", "on", "a", "mat"],
        [tokenizer.decode([i]) for i in (4, 5, 6)],
    ]
    for item in maps:
        assert item.weights.shape == (len(item.generated), len(item.source))
        assert 1 <= len(item.generated) <= 5


# -- image overlays with a fake image task ------------------------------------------------

PATCH, GRID = 4, (3, 5)


class PatchFrontend(nn.Module):
    """Images (B, 3, 12, 20) → 15 patch embeddings, none padded."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(3, d_model, PATCH, stride=PATCH)

    def forward(self, images: torch.Tensor):
        x = self.project(images).flatten(2).transpose(1, 2)
        return x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)


def _image_task(grid: tuple[int, int] = GRID) -> Task:
    def source_image(source, index):
        picture = (source[index].permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
        return picture, grid

    return Task(
        datamodule=L.LightningDataModule(),
        tokenizer=WordTokenizer(WORDS),
        frontend=lambda d_model, embedding: PatchFrontend(d_model),
        metrics=lambda: None,
        primary_metric="bleu",
        higher_is_better=True,
        source_length=GRID[0] * GRID[1],
        target_length=6,
        source_image=source_image,
    )


def _image_maps(task: Task, examples: int = 2):
    torch.manual_seed(0)
    vocab = task.tokenizer.vocab_size
    model = EncoderDecoder(TINY, vocab, 0, task.frontend, _backend("naive"))
    images = torch.rand(3, 3, GRID[0] * PATCH, GRID[1] * PATCH)
    with torch.no_grad():
        return attention_maps(_module(task, model), {"source": images}, "image", examples)


def test_image_task_gets_a_heatmap_and_an_overlay_per_example(tmp_path):
    maps = _image_maps(_image_task())
    assert [m.source for m in maps] == [[str(p) for p in range(15)]] * 2
    paths = write_heatmaps(maps, tmp_path, "image", "naive on fake")
    names = sorted(p.name for p in paths)
    assert names == ["val_0.png", "val_0_overlay.png", "val_1.png", "val_1_overlay.png"]
    panels = min(len(maps[0].generated), 16)
    overlay = imread(tmp_path / "val_0_overlay.png")
    assert overlay.shape[1] == 260 * min(4, panels), "one 2.6-inch panel per token, 4 a row"
    assert imread(tmp_path / "val_0.png").ndim == 3


def test_no_overlay_when_the_grid_does_not_match_the_patches(tmp_path, caplog):
    maps = _image_maps(_image_task(grid=(4, 4)), examples=1)
    paths = write_heatmaps(maps, tmp_path, "image", "naive on fake")
    assert [p.name for p in paths] == ["val_0.png"]
    assert "do not form the 4x4 patch grid" in caplog.text


def test_upsampling_puts_a_patch_weight_on_that_patch_pixels():
    weights = np.zeros(12)
    weights[1 * 4 + 2] = 1.0  # row 1, column 2 of a 3×4 grid
    heat = upsample_to_image(weights, (3, 4), (30, 40))
    row, column = np.unravel_index(heat.argmax(), heat.shape)
    assert 10 <= row < 20 and 20 <= column < 30
    assert heat.shape == (30, 40)


# -- the callback ---------------------------------------------------------------------------


class _ImageData(L.LightningDataModule):
    def _loader(self, seed: int) -> DataLoader:
        shape = (8, 3, GRID[0] * PATCH, GRID[1] * PATCH)
        images = torch.rand(*shape, generator=torch.Generator().manual_seed(seed))
        target = torch.tensor([[1, 4, 5, 2]] * 8)
        rows = [{"source": s, "target": target[0], "references": ["cat sat"]} for s in images]
        return DataLoader(rows, batch_size=4, shuffle=True, collate_fn=self._collate)

    @staticmethod
    def _collate(rows):
        return {
            "source": torch.stack([r["source"] for r in rows]),
            "target": torch.stack([r["target"] for r in rows]),
            "references": [r["references"] for r in rows],
        }

    def train_dataloader(self):
        return self._loader(0)

    def val_dataloader(self):
        return self._loader(1)


@pytest.mark.slow
def test_callback_draws_after_training_and_leaves_weights_mode_and_rng_untouched(tmp_path):
    task = _image_task()
    task.datamodule = _ImageData()
    task.metrics = lambda: MetricCollection({})
    torch.manual_seed(0)
    model = EncoderDecoder(TINY, task.tokenizer.vocab_size, 0, task.frontend, _backend("linear"))
    module = Seq2SeqModule(model, task, OptimSettings(), total_steps=2)
    callback = AttentionHeatmaps(examples=3, modality="image", title="linear on fake")
    trainer = L.Trainer(
        max_steps=1,
        limit_val_batches=0,
        callbacks=[callback],
        default_root_dir=str(tmp_path),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=task.datamodule)
    drawn = sorted(p.name for p in (tmp_path / "heatmaps").iterdir())
    assert drawn == [f"val_{i}{kind}.png" for i in range(3) for kind in ("", "_overlay")]

    module.train()
    weights = {k: v.clone() for k, v in module.state_dict().items()}
    rng = torch.get_rng_state()
    callback.on_train_end(trainer, module)
    assert module.training
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(weights[k], v) for k, v in module.state_dict().items())

    def broken(*args, **kwargs):
        raise NotImplementedError("no weights here")

    module.model.backends[-1].attend_weights = broken
    with pytest.warns(UserWarning, match="heatmaps skipped: NotImplementedError: no weights"):
        callback.on_train_end(trainer, module)


def test_settings_come_from_the_heatmaps_node():
    config = composed_config(["backend=naive", "heatmaps.examples=2"])
    plan = plan_run(config, get_registry())
    (callback,) = heatmap_callbacks(plan.heatmaps, config, "text")
    assert callback.examples == 2 and callback.title.startswith("naive on qa")
    assert heatmap_callbacks(HeatmapSettings(enabled=False), config, "text") == []
    assert plan_run(composed_config([]), get_registry()).heatmaps.examples == 4


def test_a_bad_heatmap_setting_is_refused_before_any_data_is_built(tmp_path):
    with pytest.raises(UserError, match=r"heatmaps.examples=0 is out of range"):
        plan_run(composed_config(["heatmaps.examples=0"]), get_registry())
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_a_tiny_qa_run_writes_heatmap_pngs_and_logs_them_to_wandb(tmp_path):
    """Two training steps with wandb (offline in tests): files in the run directory and
    the same images in the wandb run."""
    overrides = [
        "backend=sparse",
        "logger=wandb",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "heatmaps.examples=3",
        "measure.repeats=2",
    ]
    run_dir = tmp_path / "run"
    result = execute(plan_run(composed_config(overrides + SMALL_QA), get_registry()), run_dir)
    assert result.status == "ok", result.error
    pngs = sorted(p.name for p in (run_dir / "heatmaps").glob("*.png"))
    assert pngs == ["val_0.png", "val_1.png", "val_2.png"]
    assert math.prod(imread(run_dir / "heatmaps" / "val_0.png").shape[:2]) > 0
    logged = list(run_dir.glob("wandb/offline-run-*/files/media/images/heatmaps/val_*.png"))
    assert len(logged) == 3

"""Cross-attention heatmaps: what the backend under test looked at while generating.

After training, the first validation examples are decoded greedily; the generated tokens
are then teacher-forced once more to read the last decoder layer's cross-attention
inputs (queries, prepared memory, the rows' query positions), and the backend's own
``attend_weights`` (the weights it effectively applies, approximations and
position-dependent layouts included) give one (generated tokens × source positions) map
per example, averaged over heads. Maps are written to ``<run dir>/heatmaps/val_<i>.png`` (plus
``val_<i>_overlay.png`` on the image for tasks that supply ``source_image``) and logged to
wandb. It runs in eval mode without gradients and with the RNG state restored, so the
run's training and test figures are the same with or without it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import move_data_to_device, rank_zero_warn
from lightning_utilities.core.apply_func import apply_to_collection
from torch import Tensor

from xbench.api.task import Tokenizer
from xbench.config.settings import HeatmapSettings
from xbench.run.model import EncoderDecoder
from xbench.run.module import Seq2SeqModule

log = logging.getLogger(__name__)
SPLIT = "val"
SOURCE_AXIS = {"text": "source token", "audio": "audio frame", "image": "image patch"}


@dataclass
class AttentionMap:
    """One example: ``weights[t, j]`` is generated token t's weight on real source position
    ``positions[j]`` (padded positions are left out). ``truth`` (same shape, bool), when
    the batch has an alignment: the reference's true positions of target token t, drawn
    on row t (where the generation follows the reference, the same token)."""

    weights: np.ndarray
    generated: list[str]
    source: list[str]
    positions: np.ndarray
    image: tuple[np.ndarray, tuple[int, int]] | None = None
    truth: np.ndarray | None = None


def truth_rows(alignment: Tensor, rows: int, positions: Tensor) -> np.ndarray:
    """One example's (T, Nk) alignment as a (rows, len(positions)) bool array: its real
    source columns, cut or padded with unknown rows to the generated length."""
    kept = alignment[:rows][:, positions].numpy().astype(bool)
    return np.pad(kept, ((0, rows - kept.shape[0]), (0, 0)))


def cross_attention_weights(
    model: EncoderDecoder,
    source: Any,
    generated: Tensor,
    bos_id: int,
    prompt: Tensor | None = None,
    examples: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Head-averaged (B, T, Nk) weights of the last decoder layer and the key padding mask
    (B, Nk), for the first ``examples`` items. Row t is the query that produced
    ``generated[:, t]`` (its input is the token before it, BOS first); the backend's
    ``attend_weights`` gets those rows' decoder columns, so a position-dependent backend
    shows the keys it read when it wrote the token."""
    target_in = torch.cat([torch.full_like(generated[:, :1], bos_id), generated[:, :-1]], dim=1)
    inputs = model.last_cross_attention_inputs(source, target_in, prompt)
    backend = model.decoder[-1].cross_attention.backend
    weights = backend.attend_weights(inputs.q, inputs.memory, inputs.positions)[:examples]
    return weights.float().mean(dim=1), inputs.key_padding_mask[:examples]


def generated_length(ids: Tensor, eos_id: int) -> int:
    """Tokens up to and including the first EOS (all of them when there is none)."""
    ends = (ids == eos_id).nonzero()
    return int(ends[0, 0]) + 1 if len(ends) else int(ids.shape[0])


def first_examples(batch: dict, examples: int) -> dict:
    """The batch cut to its first ``examples`` items, so only those are decoded: every
    tensor whose first dimension is the batch size is sliced (padding widths stay, so each
    item's tensors are unchanged), as are the references."""
    leaves: list[Tensor] = []
    apply_to_collection(batch["source"], Tensor, leaves.append)
    size = leaves[0].shape[0]

    def cut(tensor: Tensor) -> Tensor:
        return tensor[:examples] if tensor.dim() and tensor.shape[0] == size else tensor

    cut_batch = apply_to_collection(batch, Tensor, cut)
    if "references" in batch:
        cut_batch["references"] = batch["references"][:examples]
    return cut_batch


def token_label(tokenizer: Tokenizer, token: int) -> str:
    """A token's text; special tokens (which decode to nothing) by name or id."""
    specials = {tokenizer.pad_id: "<pad>", tokenizer.bos_id: "<bos>", tokenizer.eos_id: "<eos>"}
    return specials.get(token) or tokenizer.decode([token]) or f"<{token}>"


def _source_labels(
    source: Any, index: int, positions: np.ndarray, modality: str, tokenizer: Tokenizer
) -> list[str]:
    """Words of a text source (its ids decoded one by one), else position numbers."""
    is_ids = isinstance(source, Tensor) and source.dim() == 2 and not source.is_floating_point()
    if modality == "text" and is_ids and source.shape[1] > int(positions.max(initial=0)):
        return [token_label(tokenizer, int(source[index, p])) for p in positions]
    return [str(int(p)) for p in positions]


def attention_maps(
    module: Seq2SeqModule, batch: dict, modality: str, examples: int
) -> list[AttentionMap]:
    """Maps of the first ``examples`` items of ``batch`` (on the module's device); the
    caller puts the module in eval mode and turns gradients off."""
    model, task = module.model, module.task
    tokenizer = task.tokenizer
    batch = first_examples(batch, examples)
    device_batch = move_data_to_device(batch, module.device)
    source, prompt = device_batch["source"], device_batch.get("prompt")
    ids = model.generate(source, tokenizer.bos_id, tokenizer.eos_id, module.max_new_tokens, prompt)
    weights, mask = cross_attention_weights(model, source, ids, tokenizer.bos_id, prompt, examples)
    weights, mask, ids = weights.cpu(), mask.cpu(), ids.cpu()
    alignment = batch.get("alignment")
    maps = []
    for i in range(weights.shape[0]):
        length = generated_length(ids[i], tokenizer.eos_id)
        positions = mask[i].nonzero().flatten()
        maps.append(
            AttentionMap(
                weights=weights[i, :length][:, positions].numpy(),
                generated=[token_label(tokenizer, int(t)) for t in ids[i, :length]],
                source=_source_labels(batch["source"], i, positions.numpy(), modality, tokenizer),
                positions=positions.numpy(),
                image=task.source_image(batch["source"], i) if task.source_image else None,
                truth=None if alignment is None else truth_rows(alignment[i], length, positions),
            )
        )
    return maps


def write_heatmaps(
    maps: list[AttentionMap], directory: Path, modality: str, title: str
) -> list[Path]:
    """``<directory>/val_<i>.png`` per map, plus ``val_<i>_overlay.png`` when it has an image."""
    from xbench.run.heatmap_plots import heatmap_figure, overlay_figure, save

    paths = []
    axis = SOURCE_AXIS[modality]
    for i, item in enumerate(maps):
        caption = f"{title} — {SPLIT} example {i}"
        figure = heatmap_figure(
            item.weights, item.generated, item.source, axis, caption, item.truth
        )
        paths.append(save(figure, directory / f"{SPLIT}_{i}.png"))
        if item.image is None:
            continue
        picture, grid = item.image
        if list(item.positions) != list(range(grid[0] * grid[1])):
            log.warning(
                "no overlay for %s example %d: %d source positions do not form the %dx%d "
                "patch grid",
                SPLIT,
                i,
                len(item.positions),
                *grid,
            )
            continue
        figure = overlay_figure(picture, grid, item.weights, item.generated, caption, item.truth)
        paths.append(save(figure, directory / f"{SPLIT}_{i}_overlay.png"))
    return paths


@contextlib.contextmanager
def untouched(module: torch.nn.Module, device: torch.device) -> Iterator[None]:
    """Eval mode, no gradients and a private RNG stream (reading a DataLoader draws from
    the global one); the module's mode and every RNG state are restored afterwards."""
    devices = [device] if device.type == "cuda" else []
    was_training = module.training
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        module.eval()
        try:
            yield
        finally:
            module.train(was_training)


class AttentionHeatmaps(L.Callback):
    """Draws the cross-attention of the first validation examples when training ends
    (rank zero only; the module is still on its training device then)."""

    def __init__(self, examples: int, modality: str, title: str) -> None:
        self.examples = examples
        self.modality = modality
        self.title = title
        self.paths: list[Path] = []

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.datamodule is None:
            return
        try:
            self._draw(trainer, pl_module)
        except Exception as error:  # a picture is never worth the benchmark cell
            rank_zero_warn(f"cross-attention heatmaps skipped: {type(error).__name__}: {error}")

    def _draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        with untouched(pl_module, pl_module.device):
            batch = next(iter(trainer.datamodule.val_dataloader()))
            maps = attention_maps(pl_module, batch, self.modality, self.examples)
        directory = Path(trainer.default_root_dir) / "heatmaps"
        self.paths = write_heatmaps(maps, directory, self.modality, self.title)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key=f"heatmaps/{SPLIT}",
                    images=[str(p) for p in self.paths],
                    caption=[p.stem for p in self.paths],
                    step=trainer.global_step,
                )


def heatmap_callbacks(
    options: HeatmapSettings, config: dict[str, Any], modality: str
) -> list[L.Callback]:
    """The heatmap callback the (validated) options ask for; none when disabled."""
    if not options.enabled:
        return []
    title = f"{config['backend']['name']} on {config['task']['name']}: cross-attention"
    return [AttentionHeatmaps(options.examples, modality, title)]

"""Attention fidelity and sparsity: measured on the backend's own weights over the test set.

After the test, every test batch is teacher-forced once more (eval mode, no gradients, RNG
untouched) and each decoder layer's backend gives the (B, H, T, Nk) weights it applies
(``attend_weights``), heads averaged. Against ``batch["alignment"]`` (the contract of
:mod:`xbench.api.task`) they give:

- **mass on truth**: per aligned target token, the share of its attention on its true
  source positions, averaged over those tokens; ``uniform_mass`` is what a uniform
  distribution over the real keys would score on the same tokens (the chance level);
- **AER** (alignment error rate, the word-alignment figure): A = each aligned token's
  argmax key, S = the gold links; ``1 - 2|A∩S| / (|A| + |S|)``. A token with several true
  positions (one-to-many) can hit only one of them, so a perfect score needs one-to-one
  alignment; it means most where tokens have few true positions (translation, QA).

The headline is the **last decoder layer** (the layer the heatmaps draw and the phases
time; picking the best layer on test data would flatter a backend and compare rows at
different layers); every layer's figures are kept too.

For exact backends, the **sparsity profile** of every real target token's weights over
the real keys: how many keys (the largest first) cover 50 / 90 / 99 % of its mass (median
over tokens, also as a fraction of the real keys) and its entropy (mean nats, and divided
by log of the real key count: 1 is uniform, 0 one key).

The tensor functions are pure, so they are tested on hand-built weights.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from lightning.pytorch.utilities import move_data_to_device
from torch import Tensor

from xbench.api.errors import first_line
from xbench.records.result import Fidelity, LayerFidelity, SparsityProfile
from xbench.run.model import EncoderDecoder

COVER_LEVELS = (0.5, 0.9, 0.99)


def mass_on_truth(weights: Tensor, alignment: Tensor) -> Tensor:
    """Per aligned row of ``weights`` (…, T, Nk), the weight on its true positions (the
    rows where ``alignment`` (…, T, Nk) has any True), flattened."""
    rows = alignment.any(-1)
    return (weights.float() * alignment).sum(-1)[rows]


def uniform_mass(alignment: Tensor, key_padding_mask: Tensor) -> Tensor:
    """What uniform attention over the real keys scores on the same rows as
    :func:`mass_on_truth`; ``key_padding_mask`` is (B, Nk) for (B, T, Nk) ``alignment``."""
    real = key_padding_mask[:, None, :].expand_as(alignment)
    rows = alignment.any(-1)
    hits = (alignment & real).sum(-1).float()
    return (hits / real.sum(-1).clamp(min=1).float())[rows]


def argmax_links(weights: Tensor, alignment: Tensor) -> tuple[int, int, int]:
    """``(|A∩S|, |A|, |S|)`` over the aligned rows: A holds each row's argmax key, S the
    gold links (:func:`alignment_error_rate` turns them into AER; sum them over batches)."""
    rows = alignment.any(-1)
    best = weights.argmax(-1, keepdim=True)
    hits = alignment.gather(-1, best).squeeze(-1)[rows]
    return int(hits.sum()), int(rows.sum()), int(alignment[rows].sum())


def alignment_error_rate(hits: int, predicted: int, gold: int) -> float | None:
    """``1 - 2|A∩S| / (|A| + |S|)``; None without any link."""
    return 1.0 - 2.0 * hits / (predicted + gold) if predicted + gold else None


def keys_to_cover(
    weights: Tensor, key_padding_mask: Tensor, levels: Sequence[float] = COVER_LEVELS
) -> Tensor:
    """(N, len(levels)) keys each row of ``weights`` (N, Nk) needs, largest first, to cover
    each level of its mass over the real keys (``key_padding_mask`` (N, Nk))."""
    real = weights.float().masked_fill(~key_padding_mask, 0.0)
    ranked = real.sort(-1, descending=True).values.cumsum(-1)
    total = ranked[:, -1:].clamp(min=1e-30)
    wanted = torch.tensor(levels, device=weights.device)[None, :, None] * total[:, :, None]
    below = (ranked[:, None, :] < wanted * (1 - 1e-6)).sum(-1) + 1
    return torch.minimum(below, key_padding_mask.sum(-1, keepdim=True).clamp(min=1))


def entropy(weights: Tensor, key_padding_mask: Tensor) -> Tensor:
    """Entropy in nats of each row of ``weights`` (N, Nk) renormalised over its real keys."""
    real = weights.float().masked_fill(~key_padding_mask, 0.0)
    p = real / real.sum(-1, keepdim=True).clamp(min=1e-30)
    return -(p * p.clamp(min=1e-30).log()).sum(-1)


@dataclass
class LayerTally:
    """One layer's figures gathered over the test batches."""

    mass: list[Tensor] = field(default_factory=list)
    chance: list[Tensor] = field(default_factory=list)
    links: list[int] = field(default_factory=lambda: [0, 0, 0])
    cover: list[Tensor] = field(default_factory=list)
    keys: list[Tensor] = field(default_factory=list)
    entropy: list[Tensor] = field(default_factory=list)

    def add(
        self,
        weights: Tensor,
        key_padding_mask: Tensor,
        target_rows: Tensor,
        alignment: Tensor | None,
        sparsity: bool,
    ) -> None:
        """``weights`` (B, T, Nk) head-averaged; ``target_rows`` (B, T) real target tokens."""
        if alignment is not None:
            alignment = alignment.to(weights.device) & target_rows[..., None]
            alignment &= key_padding_mask[:, None, :]
            self.mass.append(mass_on_truth(weights, alignment).cpu())
            self.chance.append(uniform_mass(alignment, key_padding_mask).cpu())
            links = argmax_links(weights, alignment)
            self.links = [a + b for a, b in zip(self.links, links, strict=True)]
        if sparsity:
            mask = key_padding_mask[:, None, :].expand_as(weights)[target_rows]
            rows = weights[target_rows]
            self.cover.append(keys_to_cover(rows, mask).cpu())
            self.keys.append(mask.sum(-1).cpu())
            self.entropy.append(entropy(rows, mask).cpu())

    def profile(self) -> SparsityProfile | None:
        if not self.cover:
            return None
        cover = torch.cat(self.cover).double()
        keys = torch.cat(self.keys).double()
        nats = torch.cat(self.entropy).double()
        fractions = cover / keys[:, None]
        normalised = nats[keys > 1] / keys[keys > 1].log()
        median = [float(c) for c in cover.median(0).values]
        share = [float(f) for f in fractions.median(0).values]
        return SparsityProfile(
            tokens=int(keys.numel()),
            real_keys=float(keys.median()),
            keys_50=median[0],
            keys_90=median[1],
            keys_99=median[2],
            fraction_50=share[0],
            fraction_90=share[1],
            fraction_99=share[2],
            entropy=float(nats.mean()),
            entropy_normalised=float(normalised.mean()) if normalised.numel() else None,
        )

    def mean_mass(self) -> float | None:
        values = torch.cat(self.mass) if self.mass else torch.empty(0)
        return float(values.mean()) if values.numel() else None


def _head_mean(layer_weights: Tensor) -> Tensor:
    return layer_weights.float().mean(dim=1)


def layer_weights(model: EncoderDecoder, batch: dict[str, Any]) -> tuple[list[Tensor], Tensor]:
    """Each decoder layer's head-averaged (B, T, Nk) weights for ``batch`` teacher-forced
    (row t: the query that predicts ``target[:, 1 + t]``) and the key padding mask."""
    target_in = batch["target"][:, :-1]
    inputs = model.cross_attention_inputs(batch["source"], target_in, batch.get("prompt"))
    weights = [
        _head_mean(backend.attend_weights(i.q, i.memory, i.positions))
        for backend, i in zip(model.backends, inputs, strict=True)
    ]
    return weights, inputs[-1].key_padding_mask


def measure_fidelity(
    model: EncoderDecoder,
    loader: Any,
    pad_id: int,
    exact: bool,
    device: torch.device,
    max_batches: int | None = None,
) -> Fidelity | None:
    """The fidelity record of ``model`` over ``loader``'s batches (the first
    ``max_batches``, all when None); None when no batch carries an alignment and the
    backend is not exact (nothing to report). The caller puts the model in eval mode with
    gradients off."""
    started = time.perf_counter()
    tallies = [LayerTally() for _ in model.decoder]
    aligned = False
    for batch in itertools.islice(loader, max_batches):
        batch = move_data_to_device(batch, device)
        alignment = batch.get("alignment")
        aligned |= alignment is not None
        if alignment is None and not exact:
            continue
        weights, mask = layer_weights(model, batch)
        target_rows = batch["target"][:, 1:] != pad_id
        for tally, layer in zip(tallies, weights, strict=True):
            tally.add(layer, mask, target_rows, alignment, exact)
    if not aligned and not exact:
        return None
    layers = [
        LayerFidelity(
            layer=index,
            mass_on_truth=tally.mean_mass(),
            aer=alignment_error_rate(*tally.links),
            sparsity=tally.profile(),
        )
        for index, tally in enumerate(tallies)
    ]
    last, tally = layers[-1], tallies[-1]
    chance = torch.cat(tally.chance) if tally.chance else torch.empty(0)
    return Fidelity(
        layer=last.layer,
        aligned_tokens=int(chance.numel()),
        mass_on_truth=last.mass_on_truth,
        uniform_mass=float(chance.mean()) if chance.numel() else None,
        aer=last.aer,
        sparsity=last.sparsity,
        layers=layers,
        seconds=time.perf_counter() - started,
        note=None if aligned else "the test data carries no alignment",
    )


def batches_tested(trainer: Any) -> int | None:
    """How many test batches the trainer's test loop read (``limit_test_batches``,
    ``fast_dev_run``), so fidelity covers the examples the quality figures do; None: all."""
    counts = getattr(trainer, "num_test_batches", None) or [math.inf]
    return None if math.isinf(counts[0]) else int(counts[0])


def fidelity_on_test_set(
    model: EncoderDecoder,
    datamodule: Any,
    pad_id: int,
    exact: bool,
    device: torch.device,
    max_batches: int | None = None,
) -> Fidelity | None:
    """:func:`measure_fidelity` over the (first ``max_batches``) test batches on
    ``device``, leaving the model's device, mode and the RNG as they were. It never
    raises: a failure is the record's ``note`` (the run's other figures stand)."""
    from xbench.run.heatmaps import untouched

    home = next(model.parameters()).device
    try:
        with untouched(model, device):
            model.to(device)
            loader = datamodule.test_dataloader()
            return measure_fidelity(model, loader, pad_id, exact, device, max_batches)
    except Exception as error:  # a diagnostic is never worth the benchmark cell
        reason = first_line(f"{type(error).__name__}: {error}")
        return Fidelity(layer=len(model.decoder) - 1, note=f"not measured: {reason}")
    finally:
        model.to(home)

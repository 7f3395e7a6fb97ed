"""Evaluation of a Hugging Face encoder-decoder with the run's backend in its cross-attention
(``model=hf``): no training. The test split goes through the model's own tokenizer or,
speech, its audio through the model's feature extractor (the task's ids and features with
random weights), greedy decoding is scored by the task's
own metrics, the three cross-attention phases are measured through the same primitive as
xbench's own model at the model's real shapes (its heads and head dimension, its encoder
lengths and padding masks on real batches), and heatmaps come from the backend's weights.

With random weights (``model.config``) quality is not measured (the record says why):
the run is for the phases at the architecture's exact shapes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.utilities import move_data_to_device

from xbench.api.errors import PluginError
from xbench.api.task import Task
from xbench.integrations.transformers import swapped_layers, use_backend
from xbench.measure.memory import run_peak_memory
from xbench.records.environment import machine_load
from xbench.records.result import (
    Efficiency,
    HFModelInfo,
    MachineLoad,
    ModelInfo,
    Quality,
    RunResult,
    Sample,
)
from xbench.run.heatmaps import AttentionMap, write_heatmaps
from xbench.run.hf_model import (
    QUALITY_NOT_MEASURED,
    HFBatch,
    HFModelPlan,
    check_task_audio,
    check_task_ids,
    cross_attention_shape,
    hf_batch,
    load_model,
)
from xbench.run.phases import RealBatch, first_batch, phases_at, with_shares
from xbench.run.plan import RunPlan
from xbench.run.sidecar import write_examples

SAMPLES = 5  # outputs kept for people to read, as for xbench's own model


def evaluate_hf(
    plan: RunPlan,
    task: Task,
    run_dir: Path,
    result: RunResult,
    device: torch.device,
    dtype: torch.dtype,
) -> None:
    """Fill ``result`` with the Hugging Face model's quality (pretrained weights) and its
    cross-attention phases with ``plan``'s backend swapped in."""
    hf = plan.hf
    assert hf is not None, "evaluate_hf needs model=hf"
    info = HFModelInfo(
        source=hf.source,
        location="local" if hf.local else "hub",
        architecture=hf.model_class.__name__,
        weights=hf.weights,
        revision=hf.settings.revision,
        inputs=_inputs(hf),
        encoder_positions=hf.config.max_source_positions if hf.reads == "audio" else None,
        quality_note=None if hf.pretrained else QUALITY_NOT_MEASURED,
    )
    result.model = ModelInfo(name="hf", settings=asdict(hf.settings))
    result.hf_model = info
    check_task_ids(hf, task.tokenizer)
    check_task_audio(hf, task, plan.task.name)
    test = _test_batches(hf, task)
    train = hf_batch(hf, first_batch(task.datamodule.train_dataloader()), task.tokenizer)
    budget = _budget(hf, task, test)
    model = load_model(hf, result.seed)
    options = asdict(plan.backend_options)
    use_backend(model, plan.backend.name, columns=budget + 1, **options).to(device)
    layers = swapped_layers(model)
    backend = layers[-1].backend  # measured and described: the last layer's
    heads, head_dim = cross_attention_shape(model)
    result.hf_model = replace(
        info, heads=heads, head_dim=head_dim, decoder_layers=len(layers), max_new_tokens=budget
    )
    cut = sum(b.cut for b in test)
    if cut:
        line = f"{cut} test sources are longer than the model reads and were cut to its limit"
        result.task.warnings.append(line)
        print(f"data warning ({plan.task.name}): {line}", flush=True)
    print(header_line(plan, hf, type(model).__name__, device), flush=True)
    decode_step_ms = None
    if hf.pretrained:
        decoded = _generate(model, hf, test, budget, device)
        result.quality = _quality(task, decoded.predictions, decoded.references)
        result.quality.examples_file = write_examples(
            task, decoded.predictions, decoded.references, result.quality.primary, run_dir
        )
        result.efficiency.inference_tokens_per_second = decoded.tokens / max(decoded.seconds, 1e-9)
        decode_step_ms = 1e3 * decoded.seconds / max(decoded.steps, 1)
        if plan.heatmaps.enabled:
            _heatmaps(model, hf, test[0], backend, plan, run_dir, budget, device)
    else:
        result.quality = Quality(
            primary_metric=task.primary_metric, higher_is_better=task.higher_is_better
        )
    peak_memory = run_peak_memory(device)
    load = MachineLoad.from_dict(machine_load())
    phases = phases_at(
        backend, _real(train), _real(test[0]), heads, head_dim, plan.measure, device, dtype
    )
    result.efficiency = Efficiency(
        train_steps=0,
        inference_tokens_per_second=result.efficiency.inference_tokens_per_second,
        decode_step_ms=decode_step_ms,
        cross_attention=with_shares(phases, len(layers), None, decode_step_ms),
        peak_memory=peak_memory,
        load_at_measure=load,
    )
    result.backend.describe = backend.describe()


def header_line(plan: RunPlan, hf: HFModelPlan, architecture: str, device: torch.device) -> str:
    """``xbench: sparse × translation on cpu (1 threads), evaluation only (no training),
    model=hf ./my-marian (MarianMTModel, pretrained weights), seed 0``."""
    where = (
        f"cuda ({torch.cuda.get_device_name(device)})"
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    return (
        f"xbench: {plan.backend.name} × {plan.task.name} on {where}, evaluation only (no "
        f"training), model=hf {hf.source} ({architecture}, {hf.weights} weights), "
        f"seed {plan.config.get('seed', 0)}"
    )


def _test_batches(hf: HFModelPlan, task: Task) -> list[HFBatch]:
    """The test split in the model's inputs, in the dataloader's order (it does not
    shuffle), each batch with its examples' audio when the model extracts its own features."""
    loader = task.datamodule.test_dataloader()
    if hf.feature_extractor is None:
        return [hf_batch(hf, batch, task.tokenizer) for batch in loader]
    assert task.waveforms is not None, "check_task_audio comes first"
    waves = task.waveforms("test")
    if len(waves) != len(loader.dataset):
        raise PluginError(
            f"task.waveforms('test') gave {len(waves)} waveforms for {len(loader.dataset)} "
            "test examples"
        )
    batches, start = [], 0
    for batch in loader:
        end = start + len(batch["references"])
        batches.append(hf_batch(hf, batch, task.tokenizer, waves[start:end]))
        start = end
    return batches


def _inputs(hf: HFModelPlan) -> str:
    if hf.feature_extractor is not None:
        return "the task's audio through the model's feature extractor"
    if hf.reads == "audio":
        return f"the task's log-mel features in the model's {hf.feature_frames}-frame window"
    if hf.tokenizer is not None:
        return "the task's source text through the model's tokenizer"
    return "the task's own token ids"


def _budget(hf: HFModelPlan, task: Task, test: list[HFBatch]) -> int:
    """Greedy decoding's budget: the setting, else the longest test reference in the
    model's tokens (EOS included), else (random weights) the task's own budget; at most
    the model's decoder positions."""
    if hf.settings.max_new_tokens:
        budget = hf.settings.max_new_tokens
    elif hf.tokenizer is not None:
        budget = max(b.decoder_length for b in test)
    else:
        budget = task.decoding_budget
    limit = hf.target_limit  # the start token takes a decoder position too
    return budget if limit is None else min(budget, limit - 1)


def _real(batch: HFBatch) -> RealBatch:
    return RealBatch(decoder_length=batch.decoder_length, mask=batch.key_mask)


class _Decoded:
    def __init__(self) -> None:
        self.predictions: list[str] = []
        self.references: list[list[str]] = []
        self.seconds = 0.0
        self.tokens = 0
        self.steps = 0


def _generate(
    model: Any, hf: HFModelPlan, test: list[HFBatch], budget: int, device: torch.device
) -> _Decoded:
    """Greedy decoding of every test batch (one beam, no sampling), timed."""
    decoded = _Decoded()
    for batch in test:
        inputs = move_data_to_device(batch.inputs, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with torch.no_grad():
            ids = model.generate(**inputs, max_new_tokens=budget, num_beams=1, do_sample=False)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        decoded.seconds += time.perf_counter() - start
        ids = ids.cpu()
        decoded.steps += ids.shape[1] - 1
        pad = hf.config.pad_token_id
        decoded.tokens += int((ids[:, 1:] != pad).sum()) if pad is not None else ids[:, 1:].numel()
        decoded.predictions += hf.tokenizer.batch_decode(ids, skip_special_tokens=True)
        decoded.references += batch.references
    return decoded


def _quality(task: Task, predictions: list[str], references: list[list[str]]) -> Quality:
    metrics = task.metrics()
    metrics.update(predictions, references)
    scores = {k: float(v) for k, v in metrics.compute().items()}
    return Quality(
        primary_metric=task.primary_metric,
        primary=scores.get(task.primary_metric),
        higher_is_better=task.higher_is_better,
        metrics=scores,
        samples=[
            Sample(prediction=p, reference=r[0])
            for p, r in zip(predictions[:SAMPLES], references[:SAMPLES], strict=True)
        ],
        test_examples=len(predictions),
    )


def _heatmaps(
    model: Any,
    hf: HFModelPlan,
    batch: HFBatch,
    backend: Any,
    plan: RunPlan,
    run_dir: Path,
    budget: int,
    device: torch.device,
) -> None:
    """Maps of the first test examples: their greedy outputs teacher-forced once more, the
    last layer's backend asked for the weights it applies (``attend_weights``)."""
    count = plan.heatmaps.examples
    inputs = {k: v[:count] for k, v in move_data_to_device(batch.inputs, device).items()}
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=budget, num_beams=1, do_sample=False)
        calls: list[tuple] = []
        attend = backend.attend

        def recorded(q, memory, positions=None):
            calls.append((q, memory, positions))
            return attend(q, memory, positions)

        backend.attend = recorded  # the instance's own attribute, removed below
        try:
            model(**inputs, decoder_input_ids=ids[:, :-1], use_cache=False)
        finally:
            del backend.attend
        q, memory, positions = calls[-1]
        weights = backend.attend_weights(q, memory, positions).float().mean(dim=1).cpu()
    mask = batch.key_mask[:count]
    maps = []
    for i in range(weights.shape[0]):
        generated = ids[i, 1:].cpu()
        length = _length(generated, hf.config.eos_token_id)
        columns = mask[i].nonzero().flatten()
        maps.append(
            AttentionMap(
                weights=weights[i, :length][:, columns].numpy(),
                generated=hf.tokenizer.convert_ids_to_tokens(generated[:length].tolist()),
                source=_source_labels(hf, inputs, i, columns.numpy()),
                positions=columns.numpy(),
            )
        )
    title = f"{plan.backend.name} in {hf.source}"
    write_heatmaps(maps, run_dir / "heatmaps", hf.reads, title)


def _length(ids: torch.Tensor, eos: int | None) -> int:
    ends = (ids == eos).nonzero() if eos is not None else []
    return int(ends[0, 0]) + 1 if len(ends) else int(ids.shape[0])


def _source_labels(hf: HFModelPlan, inputs: dict, index: int, columns: np.ndarray) -> list[str]:
    if hf.reads == "text":
        tokens = hf.tokenizer.convert_ids_to_tokens(inputs["input_ids"][index].tolist())
        return [tokens[c] for c in columns]
    return [str(int(c)) for c in columns]

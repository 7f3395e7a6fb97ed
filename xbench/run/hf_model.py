"""A Hugging Face encoder-decoder as the model under test (``model=hf``): its settings checked
at plan time, the model loaded (``model.pretrained``) or built with random weights
(``model.config``), and a task's batches turned into its inputs.

Everything that can be known before data is built is checked in :func:`plan_hf_model`:
exactly one of ``pretrained``/``config``, transformers installed, a local folder or a hub
that answers (nothing downloads from a folder: ``local_files_only``), an encoder-decoder
whose input the task has (text for ``input_ids`` models, speech for ``input_features``
ones), its tokenizer and feature extractor. A pretrained speech model reads the task's
audio (``Task.waveforms``) through its own feature extractor; with random weights
(``model.config``, no extractor) it reads the task's own log-mel features. transformers
is imported inside functions only, so xbench imports without it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from xbench.api.errors import UserError, first_line
from xbench.api.options import build_options
from xbench.api.task import WAVEFORM_RATE, Task, TaskSpec, Tokenizer
from xbench.config.settings import HFModelSettings, ModelSettings
from xbench.integrations.transformers import require_transformers
from xbench.integrations.transformers_layers import cross_attention_modules
from xbench.records.result import Revision
from xbench.run.revision import inputs_hash

#: What a model's main input needs from a task, by the task's modality.
READS = {"input_ids": "text", "input_features": "audio"}
ALLOWED_TASKS = {
    "text": "text tasks (translation, qa)",
    "audio": "speech tasks (speech_to_text)",
}
QUALITY_NOT_MEASURED = (
    "not measured: random weights (model.config) make any score meaningless; the run "
    "measures cross-attention at the model's real shapes"
)


@dataclass(frozen=True)
class HFModelPlan:
    """A checked ``model=hf``: where the model comes from and what it reads. ``tokenizer``
    and ``feature_extractor`` are the pretrained model's own (None with ``model.config``:
    the task's own token ids or features are fed instead)."""

    settings: HFModelSettings
    source: str
    local: bool
    config: Any  # transformers.PretrainedConfig
    model_class: type
    reads: str  # "text" or "audio"
    tokenizer: Any = None
    feature_extractor: Any = None

    @property
    def pretrained(self) -> bool:
        return self.settings.pretrained is not None

    @property
    def weights(self) -> str:
        return "pretrained" if self.pretrained else "random"

    @property
    def option(self) -> str:
        return "pretrained" if self.pretrained else "config"

    def load_kwargs(self) -> dict[str, Any]:
        """How transformers reads the source: offline from a folder, a revision of a hub name."""
        if self.local:
            return {"local_files_only": True}
        return {"revision": self.settings.revision} if self.settings.revision else {}

    @property
    def source_limit(self) -> int:
        """The longest source the model reads in its tokens: its position table (T5's
        relative positions have none: its tokenizer's limit)."""
        limits = [getattr(self.config, "max_position_embeddings", None)]
        limits.append(getattr(self.tokenizer, "model_max_length", None))
        return min(int(n) for n in limits if n) if any(limits) else 512

    @property
    def target_limit(self) -> int | None:
        """The most decoder positions the model has (None: relative positions, no limit)."""
        for key in ("max_target_positions", "max_position_embeddings"):
            if getattr(self.config, key, None):
                return int(getattr(self.config, key))
        return None

    @property
    def feature_frames(self) -> int:
        """The encoder's input window in feature frames (Whisper: 30 s = 3000 frames)."""
        frames = getattr(self.feature_extractor, "nb_max_frames", None)
        return int(frames or 2 * self.config.max_source_positions)


def plan_hf_model(node: dict[str, Any], task: TaskSpec, task_options: Any) -> HFModelPlan:
    """The checked ``model`` node of ``model=hf``; one-line :class:`UserError` otherwise."""
    settings = _settings(node)
    if (settings.pretrained is None) == (settings.config is None):
        given = "both" if settings.pretrained else "neither"
        raise UserError(
            f"model=hf needs exactly one of model.pretrained=<hub name or folder> (its "
            f"weights) and model.config=<hub name or folder> (random weights); {given} given"
        )
    transformers = require_transformers("model=hf")
    option = "pretrained" if settings.pretrained else "config"
    source = settings.pretrained or settings.config
    if task.modality not in ALLOWED_TASKS:
        raise UserError(
            f"model=hf cannot read task {task.name!r} ({task.modality} sources); it evaluates "
            f"{ALLOWED_TASKS['text']} and {ALLOWED_TASKS['audio']}"
        )
    local = _is_local(option, source)
    if local and settings.revision:
        raise UserError(f"model.revision applies to hub names; {source!r} is a local folder")
    kwargs = {"local_files_only": True} if local else {"revision": settings.revision}
    where = f"model.{option}={source!r}"
    config = _load(transformers.AutoConfig, source, kwargs, where, local, "config")
    model_class = _model_class(transformers, config, where)
    reads = READS.get(model_class.main_input_name)
    if reads is None:
        raise UserError(f"{where}: {model_class.__name__} reads {model_class.main_input_name}")
    if reads != task.modality:
        raise UserError(
            f"{where} is a {model_class.__name__}, which reads {reads}: it evaluates "
            f"{ALLOWED_TASKS[reads]}, not task {task.name!r}"
        )
    plan = HFModelPlan(settings, source, local, config, model_class, reads)
    if reads == "audio":
        _check_features(plan, task_options, where, plan.pretrained)
    if plan.pretrained:
        tokenizer = _load(transformers.AutoTokenizer, source, kwargs, where, local, "tokenizer")
        extractor = None
        if reads == "audio":
            extractor = _load(
                transformers.AutoFeatureExtractor, source, kwargs, where, local, "feature extractor"
            )
            _check_extractor(extractor, where)
        plan = dataclasses.replace(plan, tokenizer=tokenizer, feature_extractor=extractor)
    return plan


def with_model_folder(revision: Revision, plan: HFModelPlan) -> Revision:
    """``revision`` whose inputs also cover a local model folder (its bounded listing, as
    for a task's data folder), so resume notices a model saved again over the old one."""
    if not plan.local:
        return revision
    both = f"{revision.inputs}/{inputs_hash(plan.settings)}"
    return dataclasses.replace(revision, inputs=hashlib.sha256(both.encode()).hexdigest()[:16])


def _settings(node: dict[str, Any]) -> HFModelSettings:
    """The ``model=hf`` options; xbench's own model settings (the node's base) must be left
    at their defaults, since the Hugging Face model has its own dimensions."""
    own = {f.name for f in dataclasses.fields(HFModelSettings)}
    defaults = dataclasses.asdict(ModelSettings())
    for key, value in node.items():
        if key in defaults and key not in own and value != defaults[key]:
            raise UserError(
                f"model.{key}={value!r} is a setting of xbench's own model; model=hf takes its "
                f"dimensions from the Hugging Face model (its options: {', '.join(sorted(own))})"
            )
    values = {k: v for k, v in node.items() if k not in defaults and k != "name"}
    return build_options(HFModelSettings, values, "model")


def _is_local(option: str, source: str) -> bool:
    """A folder that exists; a path-like name that does not is an error, anything else is a
    hub name (``org/name``)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return True
    if source.startswith((".", "/", "~")) or source.count("/") > 1 or path.exists():
        raise UserError(f"model.{option}={source!r}: no such folder")
    return False


def _load(auto: Any, source: str, kwargs: dict, where: str, local: bool, what: str) -> Any:
    try:
        return auto.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError) as error:
        reason = first_line(f"{type(error).__name__}: {error}")[:200]
        if not local and what == "config":
            raise UserError(
                f"{where}: not a local folder and the hub cannot be reached or has no such "
                f"model ({reason})"
            ) from None
        raise UserError(f"{where}: no {what} to load ({reason})") from None


def _model_class(transformers: Any, config: Any, where: str) -> type:
    """The generation model of ``config``: a text or a speech sequence-to-sequence class."""
    if not getattr(config, "is_encoder_decoder", False):
        raise UserError(
            f"{where} is a {config.model_type!r} model, not an encoder-decoder: model=hf "
            "swaps backends into cross-attention"
        )
    for mapping in (
        transformers.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING,
        transformers.MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING,
    ):
        if type(config) in mapping:
            return mapping[type(config)]
    raise UserError(f"{where}: transformers has no sequence-to-sequence model for its config")


def _check_features(plan: HFModelPlan, task_options: Any, where: str, own_features: bool) -> None:
    """A log-mel input layout; the task's features must have its bins unless the model
    makes its own (``own_features``: a pretrained model's feature extractor)."""
    bins = getattr(plan.config, "num_mel_bins", None)
    n_mels = getattr(task_options, "n_mels", None)
    if bins is None or not hasattr(plan.config, "max_source_positions"):
        raise UserError(f"{where}: {plan.model_class.__name__} has no log-mel input layout")
    if n_mels != bins and not own_features:
        raise UserError(
            f"task.n_mels={n_mels} but {where} reads {bins} mel bins: set task.n_mels={bins}"
        )


def _check_extractor(extractor: Any, where: str) -> None:
    """The task's audio is :data:`~xbench.api.task.WAVEFORM_RATE`: the extractor must read it."""
    rate = getattr(extractor, "sampling_rate", None)
    if rate != WAVEFORM_RATE:
        raise UserError(
            f"{where}: its feature extractor reads {rate} Hz audio; the task's audio is "
            f"{WAVEFORM_RATE} Hz"
        )


def check_task_audio(plan: HFModelPlan, task: Task, task_name: str) -> None:
    """A pretrained speech model reads audio: the built task must hand it out."""
    if plan.feature_extractor is not None and task.waveforms is None:
        raise UserError(
            f"model.pretrained={plan.source!r} reads audio through its feature extractor, but "
            f"task {task_name!r} gives no audio (Task.waveforms is None); use a task that does, "
            "or model.config for random weights on the task's own features"
        )


def load_model(plan: HFModelPlan, seed: int) -> torch.nn.Module:
    """The model in eval mode with SDPA attention: its weights, or random ones (``seed``)."""
    if plan.pretrained:
        model = plan.model_class.from_pretrained(
            plan.source, attn_implementation="sdpa", **plan.load_kwargs()
        )
    else:
        torch.manual_seed(seed)
        model = plan.model_class(plan.config)
        model.set_attn_implementation("sdpa")
    return model.eval()


def cross_attention_shape(model: torch.nn.Module) -> tuple[int, int]:
    """Heads and head dimension of the model's cross-attention (what the backend runs at)."""
    _, module = next(iter(cross_attention_modules(model)))
    heads = getattr(module, "num_heads", None) or getattr(module, "n_heads", None)
    head_dim = getattr(module, "head_dim", None) or getattr(module, "key_value_proj_dim", None)
    if not heads or not head_dim:
        config = model.config
        heads = heads or config.decoder_attention_heads
        head_dim = head_dim or config.d_model // heads
    return int(heads), int(head_dim)


@dataclass(frozen=True)
class HFBatch:
    """One task batch as the model reads it: ``inputs`` for ``generate``/``forward``, the
    references, the teacher-forced decoder length (start token and target, without its
    last token) and the encoder's real positions (B, Nk). ``inputs`` is empty for a
    pretrained speech model's batch given without its audio (a training batch: tasks keep
    their evaluation splits' audio only), whose shapes alone are measured."""

    inputs: dict[str, Tensor]
    references: list[list[str]]
    decoder_length: int
    key_mask: Tensor
    cut: int = 0  # sources longer than the model's window, cut to it


def source_texts(batch: dict[str, Any], tokenizer: Tokenizer) -> list[str]:
    """The task's source strings, its ids decoded with its own tokenizer (a prompt, QA's
    question, first as ``question: … context: …``)."""
    contexts = [tokenizer.decode(row.tolist()) for row in batch["source"]]
    prompt = batch.get("prompt")
    if prompt is None:
        return contexts
    questions = [tokenizer.decode(row.tolist()) for row in prompt]
    return [f"question: {q} context: {c}" for q, c in zip(questions, contexts, strict=True)]


def hf_batch(
    plan: HFModelPlan,
    batch: dict[str, Any],
    task_tokenizer: Tokenizer,
    waveforms: list[np.ndarray] | None = None,
) -> HFBatch:
    """``batch`` (a task's) in the model's inputs: text through the model's tokenizer or the
    task's own ids (``model.config``); speech as ``waveforms`` (the batch's examples' audio,
    in its order) through the model's feature extractor, or (``model.config``) the task's
    log-mel features laid into the model's window."""
    references = [list(refs) for refs in batch["references"]]
    cut = 0
    if plan.reads == "audio":
        size = len(references)
        inputs, cut = _speech_inputs(plan, batch, waveforms)
        key_mask = torch.ones(size, plan.config.max_source_positions, dtype=torch.bool)
    elif plan.tokenizer is not None:
        texts, limit = source_texts(batch, task_tokenizer), plan.source_limit
        full = plan.tokenizer(texts)["input_ids"]
        cut = sum(len(ids) > limit for ids in full)
        encoded = plan.tokenizer(
            texts, padding=True, truncation=True, max_length=limit, return_tensors="pt"
        )
        inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
        key_mask = encoded["attention_mask"].bool()
    else:
        ids = batch["source"]
        key_mask = ids != task_tokenizer.pad_id
        inputs = {"input_ids": ids, "attention_mask": key_mask.long()}
    if plan.tokenizer is not None:
        targets = plan.tokenizer(text_target=[refs[0] for refs in references], padding=True)
        decoder_length = len(targets["input_ids"][0])
    else:
        prompt = batch.get("prompt")
        decoder_length = batch["target"].shape[1] - 1 + (0 if prompt is None else prompt.shape[1])
    if plan.target_limit is not None:
        decoder_length = min(decoder_length, plan.target_limit)
    return HFBatch(inputs, references, decoder_length, key_mask, cut)


def _speech_inputs(
    plan: HFModelPlan, batch: dict[str, Any], waveforms: list[np.ndarray] | None
) -> tuple[dict[str, Tensor], int]:
    """The model's ``input_features`` and how many sources are longer than its window."""
    extractor = plan.feature_extractor
    if extractor is None:
        frames, lengths = batch["source"]
        window = plan.feature_frames
        features = torch.zeros(frames.shape[0], frames.shape[2], window)
        kept = min(window, frames.shape[1])
        features[:, :, :kept] = frames[:, :kept].transpose(1, 2)
        return {"input_features": features}, int((lengths > window).sum())
    if waveforms is None:
        return {}, 0
    if len(waveforms) != len(batch["references"]):
        raise ValueError(f"{len(waveforms)} waveforms for a batch of {len(batch['references'])}")
    features = extractor(waveforms, sampling_rate=WAVEFORM_RATE, return_tensors="pt")
    window = getattr(extractor, "n_samples", None)
    cut = sum(len(w) > window for w in waveforms) if window else 0
    return {"input_features": features["input_features"]}, cut


def check_task_ids(plan: HFModelPlan, task_tokenizer: Tokenizer) -> None:
    """With ``model.config`` a text model reads the task's own ids: they must fit its vocab."""
    if plan.reads != "text" or plan.tokenizer is not None:
        return
    vocab, model_vocab = task_tokenizer.vocab_size, plan.config.vocab_size
    if vocab > model_vocab:
        raise UserError(
            f"model.config={plan.source!r}: the task's {vocab} token ids do not fit the "
            f"model's vocabulary of {model_vocab}; lower task.vocab_size (or the task's own "
            "vocabulary option) or use model.pretrained with its tokenizer"
        )

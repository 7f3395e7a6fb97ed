"""RunResult: everything one run measured, as one typed, versioned JSON record.

Reporting, caching and resume read only these records; wandb, the console table and the
leaderboard are views of them. On disk a record is plain JSON (``to_dict``), so it stays
readable without xbench; :meth:`RunResult.load` migrates records of older schema versions
(:mod:`xbench.records.migrate`) and refuses newer ones.

A record is strict JSON: a figure that is not a finite number (a NaN metric, an infinite
rate) is written as ``null``, so it reads as "not measured" everywhere, and a ``NaN`` or
``Infinity`` token in an older file is read as ``null`` too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xbench.atomic import write_atomic
from xbench.jsonable import Jsonable
from xbench.measure.types import Latency, Measurement, Memory
from xbench.records.migrate import SCHEMA_VERSION, migrate

STATUSES = ("ok", "oom", "unsupported", "failed", "diverged")
RESULT_FILE = "result.json"
# Keys that do not change what a run computes, so they stay out of the config hash.
NOT_HASHED = ("hydra", "logger", "output_root", "threads", "resume")


def config_hash(config: dict[str, Any]) -> str:
    """Stable hash of the settings that determine a run's figures."""
    relevant = {k: v for k, v in config.items() if k not in NOT_HASHED}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


@dataclass
class BackendInfo(Jsonable):
    """The attention backend of a run: its plugin's name, options, exactness and
    description, and ``describe()`` (what really ran; empty when it was never built)."""

    name: str
    exact: bool
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    describe: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskFacts(Jsonable):
    """The task of a run. ``name``, ``options`` and ``description`` come from the plan; the
    rest from the built task (absent when building it failed).

    ``data`` is the task's ``data_info`` (source, checksum, sizes, ...). ``source_length``
    and ``target_length`` are the task's ``Task.source_length``/``target_length``, the Nk
    and Nq at which the backend is asked whether it runs at all (the phases are measured
    at real batches, :class:`CrossAttentionPhases`): the longest example the task produces
    (the built-ins take the test split; speech_to_text's source is its longest clip of any
    split). ``source_length`` counts encoder positions only: tokens without BOS/EOS (text
    tasks), feature frames after subsampling (speech), image patches (captioning).
    ``target_length`` counts the decoder prompt (QA's question) and BOS; qa, translation
    and speech_to_text also count EOS, so their figure is one more than the teacher-forced
    decoder input, while captioning's is exactly that input (BOS + caption tokens).
    ``artifacts`` maps a file the task made to its copy in the run directory.
    ``warnings`` are the task's ``data_warnings`` (e.g. truncation that cut answers out).
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    source_length: int | None = None
    target_length: int | None = None
    primary_metric: str | None = None
    higher_is_better: bool | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class HFModelInfo(Jsonable):
    """A Hugging Face encoder-decoder under test (``model=hf``): where it came from, what
    it is, whether its weights are pretrained or random (``model.config``: quality is not
    measured, ``quality_note`` says why) and the cross-attention shape it runs at.
    Evaluation only: such a run never trains."""

    source: str
    location: str  # "local" (a folder, read offline) or "hub"
    architecture: str  # the model class, e.g. MarianMTModel
    weights: str  # "pretrained" or "random"
    revision: str | None = None
    inputs: str = ""  # what the encoder read: the model's tokenizer, the task's ids, features
    heads: int | None = None
    head_dim: int | None = None
    decoder_layers: int | None = None
    encoder_positions: int | None = None  # a fixed encoder length (Whisper's 1500 frames)
    max_new_tokens: int | None = None
    quality_note: str | None = None


@dataclass
class ModelInfo(Jsonable):
    """The encoder-decoder of a run: its config-group name (``model=tiny``) and the
    resolved settings it was built with (the fields of ``xbench.config.settings.ModelSettings``,
    kept as a mapping so the record does not change shape when that config grows; with
    ``model=hf`` those of ``HFModelSettings``, and the record's ``hf_model`` says more)."""

    name: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample(Jsonable):
    """One test example's decoded output next to its (first) reference."""

    prediction: str
    reference: str


@dataclass
class Quality(Jsonable):
    """Test-split figures: every metric, the primary one and its direction, and a few
    sample outputs. Empty (no metrics, ``primary`` None) when the run did not finish.
    ``test_examples`` is how many test examples were scored (None in older records);
    ``examples_file`` names the per-example sidecar beside the record
    (:mod:`xbench.records.examples`), None when the task declares no per-example
    statistics."""

    primary_metric: str | None = None
    primary: float | None = None
    higher_is_better: bool | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)  # None: not finite
    samples: list[Sample] = field(default_factory=list)
    test_examples: int | None = None
    examples_file: str | None = None


#: The cross-attention phases a run measures, in the order views show them.
PHASES = ("train", "prefill", "decode")
#: Each phase's throughput, by the :class:`~xbench.measure.types.Measurement` property that
#: gives it: train and prefill are bound by arithmetic (FLOP/s), while a decode step reads
#: all of K and V for one query row per sequence, so its roof is bytes read per second.
ROOFS = {"train": "tflops", "prefill": "tflops", "decode": "bytes_per_second"}


@dataclass
class CrossAttentionPhases(Jsonable):
    """The cross-attention op measured alone after the test, at the shapes and with the
    padding masks of the task's own batches (random q, k, v), once per phase:

    - ``train``: forward+backward, a training batch (Nq = its decoder columns, prompt
      included) against its sources;
    - ``prefill``: forward only, the first test batch teacher-forced the same way;
    - ``decode``: one query row per sequence (Nq = 1) against the test batch's memory,
      prepared before timing (the one-off cost is ``decode.prepare``); its roof is the
      K+V bytes read per second, where the other two are bound by FLOP/s.

    ``train_share`` and ``decode_share`` are the part of a training step and of a cached
    decoding step that cross-attention takes: decoder layers × the phase's median over
    the step's (above 1 only when timing noise or a cold cache says the figures disagree).
    ``note`` says what a reader must know about the figures (a migrated record's origin,
    or why no phase was measured). A phase that could not be measured is a
    :class:`~xbench.measure.types.Measurement` with its status and reason; None: not taken.
    """

    train: Measurement | None = None
    prefill: Measurement | None = None
    decode: Measurement | None = None
    train_share: float | None = None
    decode_share: float | None = None
    note: str | None = None

    def phase(self, name: str) -> Measurement | None:
        """The measurement of phase ``name`` (one of :data:`PHASES`)."""
        if name not in PHASES:
            raise ValueError(f"phase {name!r} is not one of {PHASES}")
        return getattr(self, name)

    def median_ms(self, name: str) -> float | None:
        """Median milliseconds of one call in phase ``name``, when it was timed."""
        measured = self.phase(name)
        return measured.latency.median_ms if measured and measured.latency else None

    def memory_bytes(self, name: str) -> int | None:
        """Peak bytes of one call in phase ``name``, when they were counted."""
        measured = self.phase(name)
        return measured.memory.bytes if measured and measured.memory else None

    def throughput(self, name: str) -> float | None:
        """Phase ``name``'s throughput against its roof (:data:`ROOFS`): TFLOP/s, or bytes
        read per second for ``decode``."""
        measured = self.phase(name)
        return getattr(measured, ROOFS[name]) if measured else None

    def unmeasured(self) -> list[tuple[str, str]]:
        """``(phase, "oom: <reason>")`` of each phase that was taken but could not run."""
        return [
            (name, measured.why_not_measured)
            for name in PHASES
            if (measured := self.phase(name)) and measured.why_not_measured
        ]


#: When a run records the machine's load (``Efficiency.load_at_<moment>``).
LOAD_MOMENTS = ("train", "measure")


@dataclass(frozen=True)
class MachineLoad(Jsonable):
    """How busy the machine was when figures were taken
    (:func:`xbench.records.environment.machine_load`): the 1-minute load average (None
    where ``os.getloadavg`` is unavailable), the CPU cores this process may run on, and
    the threads torch used. ``contended`` is
    :func:`~xbench.records.environment.is_contended`: other work competed for those
    cores, so CPU timings read slower than the machine is; None when the load is unknown."""

    load_1m: float | None = None
    cores: int | None = None
    threads: int | None = None
    contended: bool | None = None


@dataclass
class Efficiency(Jsonable):
    """What a finished run cost: the training step's latency (steady state, warm-up
    steps left out) and count, the fit's wall time, greedy-decoding throughput and the
    mean time of one decoding step in the test loop, the cross-attention phases, the peak
    memory of the whole run, and the machine's load when training started and when the
    cross-attention was measured. Every figure is None when it was not measured (older
    records have no ``fit_seconds`` nor loads).

    ``decode_step_ms`` is the test loop's generation time over the steps it generated
    (one step: one new token for every sequence of a batch); it includes each batch's
    encoder pass and memory preparation, spread over that batch's steps.
    ``fit_seconds`` is the wall time from the start of training to its end (Lightning's
    ``on_train_start`` to ``on_train_end``): data loading, validation and slow steps
    included, so ``train_steps / fit_seconds`` is the rate the fit achieved, where
    ``1 / train_step`` is that of a typical step."""

    train_step: Latency | None = None
    train_steps: int | None = None
    fit_seconds: float | None = None
    inference_tokens_per_second: float | None = None
    decode_step_ms: float | None = None
    cross_attention: CrossAttentionPhases | None = None
    peak_memory: Memory | None = None
    load_at_train: MachineLoad | None = None
    load_at_measure: MachineLoad | None = None

    def phase_ms(self, name: str) -> float | None:
        """Median milliseconds of one cross-attention call in phase ``name``."""
        return self.cross_attention.median_ms(name) if self.cross_attention else None

    def phase_bytes(self, name: str) -> int | None:
        """Peak bytes of one cross-attention call in phase ``name``."""
        return self.cross_attention.memory_bytes(name) if self.cross_attention else None

    @property
    def train_step_ms(self) -> float | None:
        """Median milliseconds of one training step."""
        return self.train_step.median_ms if self.train_step else None

    @property
    def achieved_steps_per_second(self) -> float | None:
        """Optimiser steps over the fit's wall time (None: either was not measured)."""
        if not self.train_steps or not self.fit_seconds:
            return None
        return self.train_steps / self.fit_seconds

    @property
    def contended_at(self) -> list[str]:
        """When the machine was under contention: ``train`` and/or ``measure``."""
        return [
            when
            for when in LOAD_MOMENTS
            if (load := getattr(self, f"load_at_{when}")) and load.contended
        ]

    @property
    def peak_memory_bytes(self) -> int | None:
        return self.peak_memory.bytes if self.peak_memory else None


@dataclass(frozen=True)
class SparsityProfile(Jsonable):
    """How concentrated an exact backend's attention is (one decoder layer, the test set's
    real target tokens, over each token's real keys): ``keys_<p>`` is the median number of
    keys (largest weights first) that cover p % of a token's mass, ``fraction_<p>`` the
    median of that count over the token's real keys; ``entropy`` the mean entropy in nats,
    ``entropy_normalised`` its mean over log(real keys) (1: uniform, 0: one key; None when
    every token had a single key). ``real_keys``: their median count."""

    tokens: int
    real_keys: float
    keys_50: float
    keys_90: float
    keys_99: float
    fraction_50: float
    fraction_90: float
    fraction_99: float
    entropy: float
    entropy_normalised: float | None = None


@dataclass(frozen=True)
class LayerFidelity(Jsonable):
    """One decoder layer's :class:`Fidelity` figures (``layer`` 0 is the first)."""

    layer: int
    mass_on_truth: float | None = None
    aer: float | None = None
    sparsity: SparsityProfile | None = None


@dataclass
class Fidelity(Jsonable):
    """Where the backend's cross-attention looks on the test set, teacher-forced
    (:mod:`xbench.run.fidelity`), against the task's ``batch["alignment"]``.

    ``mass_on_truth``: mean over the ``aligned_tokens`` of the share of a token's weight on
    its true source positions; ``uniform_mass``: the same for uniform attention over the
    real keys (chance level); ``aer``: alignment error rate of each aligned token's argmax
    key against the gold links (0 perfect). Headline figures are the last decoder layer's
    (``layer``); ``layers`` has every layer. ``sparsity``: exact backends only. All None
    when the data carries no alignment (``note`` says so). ``seconds``: what measuring took.
    """

    layer: int
    aligned_tokens: int = 0
    mass_on_truth: float | None = None
    uniform_mass: float | None = None
    aer: float | None = None
    sparsity: SparsityProfile | None = None
    layers: list[LayerFidelity] = field(default_factory=list)
    seconds: float | None = None
    note: str | None = None


@dataclass
class Environment(Jsonable):
    """Where the figures were measured (:func:`xbench.records.environment.environment`).
    ``cuda`` is None without a GPU; ``device`` is the GPU's name or ``cpu``."""

    python: str | None = None
    torch: str | None = None
    cuda: str | None = None
    device: str | None = None
    cpu: str | None = None
    cpu_count: int | None = None
    threads: int | None = None
    platform: str | None = None
    executable: str | None = None


@dataclass(frozen=True)
class Revision(Jsonable):
    """What code and inputs produced a run (:mod:`xbench.run.revision`); resume compares
    it. ``inputs`` is None when no task option names a local file."""

    code: str | None = None
    inputs: str | None = None


@dataclass
class SwapIn(Jsonable):
    """A swap-in run (``eval.trained_with``): the weights were trained with
    ``trained_with`` and the run tested them with ``evaluated_with`` after
    ``finetune_steps`` of adaptation. ``checkpoint`` is the cached weights file (``reused``:
    an earlier run had made it); ``trained_quality`` is the trained model's own test
    quality with its own backend, the figure the swapped-in one is read against."""

    trained_with: str
    evaluated_with: str
    finetune_steps: int = 0
    checkpoint: str | None = None
    reused: bool = False
    trained_quality: Quality | None = None


@dataclass
class RunResult(Jsonable):
    """One run: identity, what ran, status, quality, efficiency and environment.
    ``tier`` is the data tier the run used (``tier=long``; ``default`` unless chosen)."""

    run_id: str
    config_hash: str
    xbench_version: str
    git_sha: str | None
    backend: BackendInfo
    task: TaskFacts
    model: ModelInfo
    seed: int
    tier: str = "default"
    swap: SwapIn | None = None
    hf_model: HFModelInfo | None = None  # model=hf: the Hugging Face model under test
    status: str = "ok"
    error: str | None = None
    quality: Quality = field(default_factory=Quality)
    efficiency: Efficiency = field(default_factory=Efficiency)
    fidelity: Fidelity | None = None
    environment: Environment = field(default_factory=Environment)
    config: dict[str, Any] = field(default_factory=dict)
    revision: Revision = field(default_factory=Revision)
    created: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat())
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")

    def to_json(self) -> str:
        """Strict JSON: non-finite floats become null (never a ``NaN`` token)."""
        return json.dumps(
            finite_or_null(self.to_dict()), indent=2, sort_keys=True, default=str, allow_nan=False
        )

    def write(self, run_dir: str | Path) -> Path:
        """Write ``result.json`` into ``run_dir`` atomically (temp file, then rename)."""
        return write_atomic(Path(run_dir) / RESULT_FILE, self.to_json().encode())

    @classmethod
    def load(cls, path: str | Path) -> RunResult:
        """Read a record, migrating an older schema version.

        Raises :class:`~xbench.records.migrate.NewerSchemaError` for a record this xbench
        is too old to read and ``ValueError`` for a file that is not a run record; the
        messages leave the path to the caller (:func:`xbench.records.store.find_results`).
        """
        try:
            data = json.loads(Path(path).read_text(), parse_constant=lambda _: None)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"not valid JSON ({error})") from error
        try:
            return cls.from_dict(migrate(data))
        except (TypeError, KeyError, AttributeError, IndexError) as error:
            raise ValueError(f"not a run record ({_what(error)})") from error


def _what(error: Exception) -> str:
    return f"missing field {error}" if isinstance(error, KeyError) else str(error)


def finite_or_null(value: Any) -> Any:
    """``value`` (plain JSON data) with every NaN or infinite float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(item) for item in value]
    return value

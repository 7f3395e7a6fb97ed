"""The run's own settings — model, optimiser, heatmaps, measurement, trainer — declared once.

Each dataclass is the single source of its defaults: :func:`xbench.config.compose.store_settings`
puts it in Hydra's ConfigStore as ``settings/<name>``, the primary config builds on that node
and presets (``configs/model/*.yaml``, ``configs/trainer/*.yaml``) only override it; the run
plan validates the composed values against the same declarations (help, range, choices).
"""

from __future__ import annotations

from dataclasses import dataclass

from xbench.api.options import option

# What ``trainer.accelerator`` and ``trainer.precision`` accept (Lightning's own names).
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
PRECISIONS = (
    "32-true", "32", 32, "16-mixed", "16", 16, "bf16-mixed", "bf16",
    "16-true", "bf16-true", "64-true", "64", 64,
)  # fmt: skip


@dataclass
class ModelSettings:
    """The ``model`` node: the encoder-decoder every run trains (defaults: ``model=tiny``)."""

    d_model: int = option(64, help="width of every layer", min=8)
    heads: int = option(2, help="attention heads (d_model must divide by it)", min=1)
    encoder_layers: int = option(2, help="encoder blocks", min=1)
    decoder_layers: int = option(2, help="decoder blocks", min=1)
    ffn_dim: int = option(256, help="hidden width of the feed-forward layers", min=1)
    dropout: float = option(0.0, help="dropout probability", min=0.0, max=0.9)
    conv_kernel: int = option(4, help="short causal depthwise convolution; 0 = none", min=0)
    encoder_window: int = option(
        0,
        help="encoder self-attention sees positions within this distance (cost linear in "
        "the source length); 0 = every position",
        min=0,
    )

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by heads={self.heads}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads


@dataclass
class OptimSettings:
    """The ``optim`` node: AdamW with linear warm-up and cosine decay."""

    lr: float = option(3e-3, help="peak AdamW learning rate", min=0.0)
    weight_decay: float = option(0.01, help="AdamW weight decay (matrices only)", min=0.0)
    warmup_steps: int = option(100, help="linear warm-up steps", min=1)
    label_smoothing: float = option(0.0, help="cross-entropy label smoothing", min=0.0, max=1.0)


@dataclass
class HeatmapSettings:
    """The ``heatmaps`` node: cross-attention maps of the first validation examples."""

    enabled: bool = option(True, help="draw cross-attention heatmaps at the end of training")
    examples: int = option(
        4, help="validation examples drawn (the first of the first batch)", min=1, max=64
    )


@dataclass
class MeasureSettings:
    """The ``measure`` node: cross-attention timed alone in its train, prefill and decode
    phases, at the batch sizes, shapes and padding masks of the task's own batches."""

    warmup: int = option(3, help="untimed calls before timing", min=0)
    repeats: int = option(20, help="timed calls; median and IQR are reported", min=1)


@dataclass
class EvalSettings:
    """The ``eval`` node: evaluate a model trained with another backend (swap-in).

    With ``trained_with`` set, the run trains (once, cached by the training config's hash
    under ``<output_root>/checkpoints/``) or loads a model whose cross-attention is that
    backend, puts this run's backend in its place, optionally fine-tunes it, then tests
    and measures it as usual.
    """

    trained_with: str | None = option(
        None,
        help="backend (with its default options) the weights are trained with; null: train "
        "with this run's backend",
    )
    finetune_steps: int = option(
        0, help="steps that adapt the swapped-in model before testing", min=0
    )


@dataclass
class HFModelSettings:
    """The ``model=hf`` node: a Hugging Face encoder-decoder as the model under test,
    evaluated (never trained) with the run's backend in its cross-attention.

    ``pretrained`` loads a model with its weights, tokenizer and feature extractor;
    ``config`` builds the architecture from its config alone with random weights (seeded),
    fed the task's own token ids or features, to measure cross-attention at its real shapes.
    Either is a local folder (read with ``local_files_only``) or a hub name (downloaded,
    so it needs a network); the run plan asks for exactly one of them.
    """

    pretrained: str | None = option(
        None, help="local folder or hub name of a model to evaluate with its weights"
    )
    config: str | None = option(
        None, help="local folder or hub name of a config: the architecture, random weights"
    )
    revision: str | None = option(
        None, help="hub revision (branch, tag or commit) of a hub name; null: the default"
    )
    max_new_tokens: int = option(
        0,
        help="greedy decoding budget in the model's tokens; 0: the longest test reference in "
        "them plus EOS (model.config: the task's budget)",
        min=0,
    )

    def __post_init__(self) -> None:
        for key in ("pretrained", "config", "revision"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{key}={value!r} must be a folder or hub name (text)")


@dataclass
class TrainerSettings:
    """The ``trainer`` node: the ``lightning.Trainer`` keywords xbench sets (presets:
    ``trainer=cpu|gpu|debug``). Any other Trainer keyword may be added (``+trainer.KEY=``);
    the plan checks its name against Lightning's signature and Lightning checks its value."""

    accelerator: str = option("cpu", help="where to train", choices=ACCELERATORS)
    devices: int | str = option(1, help="devices per node: N >= 1, -1 (all) or auto")
    strategy: str = option("auto", help="auto, ddp, ... (one of Lightning's strategies)")
    precision: int | str = option("32-true", help="numeric precision", choices=PRECISIONS)
    max_steps: int = option(800, help="training steps (the run's budget)", min=1)
    val_check_interval: int | float | None = option(
        400, help="validate every N training batches, or a fraction (0, 1] of an epoch"
    )
    check_val_every_n_epoch: int | None = option(
        None, help="validate every N epochs; null: by val_check_interval alone", min=1
    )
    num_sanity_val_steps: int = option(
        0, help="validation batches before training; -1: all", min=-1
    )
    gradient_clip_val: float | None = option(1.0, help="gradient norm clip; null: none", min=0.0)
    log_every_n_steps: int = option(50, help="logging interval in steps", min=1)
    enable_checkpointing: bool = option(False, help="write Lightning checkpoints")

    def __post_init__(self) -> None:
        devices, interval = self.devices, self.val_check_interval
        if not (
            devices in ("auto", -1)
            or (is_whole_number(devices) and devices >= 1)
            or (isinstance(devices, str) and _is_index_list(devices))
        ):
            raise ValueError(f"devices={devices!r} must be a count >= 1, -1 (all), auto or '0,1'")
        if interval is not None and not (
            (is_whole_number(interval) and interval >= 1)
            or (isinstance(interval, float) and 0.0 < interval <= 1.0)
        ):
            raise ValueError(
                f"val_check_interval={interval!r} must be batches >= 1 or a fraction in (0, 1]"
            )


def is_whole_number(value: object) -> bool:
    """An int that is not a bool: what an integer setting takes, never a fraction or text."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_index_list(text: str) -> bool:
    """``"0,1"``: Lightning's device indices as a string."""
    return all(part.strip().isdigit() for part in text.split(",")) and bool(text.strip())


# The ``settings/<name>`` nodes of the ConfigStore.
RUN_SETTINGS = {
    "model": ModelSettings,
    "optim": OptimSettings,
    "heatmaps": HeatmapSettings,
    "measure": MeasureSettings,
    "eval": EvalSettings,
}
# Nodes presets build on (``configs/trainer/cpu.yaml``, ``configs/model/hf.yaml``), not the
# primary config.
PRESET_SETTINGS = {"trainer": TrainerSettings, "hf_model": HFModelSettings}

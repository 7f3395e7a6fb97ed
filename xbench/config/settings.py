"""The run's own settings — model, optimiser, heatmaps, measurement — declared once.

Each dataclass is the single source of its defaults: :func:`xbench.config.compose.store_settings`
puts it in Hydra's ConfigStore as ``settings/<name>``, the primary config builds on that node
and presets (``configs/model/*.yaml``) only override it; the run plan validates the composed
values against the same declarations (help, range, choices).
"""

from __future__ import annotations

from dataclasses import dataclass

from xbench.api.options import option


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
    """The ``measure`` node: cross-attention timed alone, at the task's real shapes."""

    batch_size: int = option(8, help="batch of the timed kernel call", min=1)
    warmup: int = option(3, help="untimed calls before timing", min=0)
    repeats: int = option(20, help="timed calls; median and IQR are reported", min=1)


# The ``settings/<name>`` nodes of the ConfigStore.
RUN_SETTINGS = {
    "model": ModelSettings,
    "optim": OptimSettings,
    "heatmaps": HeatmapSettings,
    "measure": MeasureSettings,
}

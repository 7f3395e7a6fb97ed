"""Cross-attention of real architectures, random weights: each backend's three phases at
the shapes of whisper-base and opus-mt-en-de, offline.

    python benchmarks/hf_real_shapes.py [--backends naive,flash] [any `xbench run` override]
    python benchmarks/hf_real_shapes.py threads=2 measure.repeats=50

The two configs are written here from their published dimensions (no download) and saved
with ``save_pretrained`` to a temporary folder; each backend then runs as
``xbench run model=hf model.config=<folder>`` would (the same plan and runner): the model is
built from the config with random weights, the backend swapped into its cross-attention,
and the phases measured at its heads and head dimension on the task's real batches —
whisper-base's 1500 encoder frames on ``speech_to_text`` (80 mel bins), opus-mt's width on
``translation`` (the task's own token ids, which fit its 58101-token vocabulary). Quality
is not measured (random weights). Prints one table (model × backend × phase: latency,
memory, the batch, decoder and encoder lengths, heads and head dimension) and the machine's
load. Not a pytest file (pytest collects ``test_*.py`` only).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from xbench.config.compose import CONFIG_NAME, store_plugin_configs
from xbench.config.preflight import compose_run_config
from xbench.records.result import RunResult
from xbench.registry import get_registry
from xbench.run.plan import plan_run
from xbench.run.runner import execute

BACKENDS = ("naive", "flash", "sparse", "linear", "uniform")
PHASES = ("train", "prefill", "decode")
# Small splits: the phases take the first train and test batch; the rest is not read.
TASKS = {
    "whisper-base": [
        "task=speech_to_text",
        "task.n_mels=80",
        "task.data.utterances_per_example=8",  # 8-19 s of speech: a good part of the window
        "task.data.train_size=16",
        "task.data.val_size=4",
        "task.data.test_size=8",
        "task.batch_size=8",
        "task.eval_batch_size=8",
    ],
    "opus-mt-en-de": [
        "task=translation",
        "task.data.train_size=256",
        "task.data.val_size=16",
        "task.data.test_size=16",
        "task.batch_size=16",
        "task.eval_batch_size=16",
    ],
}


def published_configs(root: Path) -> dict[str, Path]:
    """whisper-base and opus-mt-en-de as their model cards give them, saved under ``root``."""
    import transformers

    configs = {
        "whisper-base": transformers.WhisperConfig(
            vocab_size=51865,
            d_model=512,
            encoder_layers=6,
            decoder_layers=6,
            encoder_attention_heads=8,
            decoder_attention_heads=8,
            encoder_ffn_dim=2048,
            decoder_ffn_dim=2048,
            num_mel_bins=80,
            max_source_positions=1500,
            max_target_positions=448,
        ),
        "opus-mt-en-de": transformers.MarianConfig(
            vocab_size=58101,
            d_model=512,
            encoder_layers=6,
            decoder_layers=6,
            encoder_attention_heads=8,
            decoder_attention_heads=8,
            encoder_ffn_dim=2048,
            decoder_ffn_dim=2048,
            max_position_embeddings=512,
            pad_token_id=58100,
            decoder_start_token_id=58100,
        ),
    }
    folders = {}
    for name, config in configs.items():
        folders[name] = root / name
        config.save_pretrained(folders[name])
    return folders


def measured(folder: Path, task: list[str], backend: str, overrides: list[str], out: Path):
    """One ``model=hf model.config=<folder>`` cell's record."""
    registry = get_registry()
    config = compose_run_config(
        [
            "model=hf",
            f"model.config={folder}",
            f"backend={backend}",
            "logger=none",
            "heatmaps.enabled=false",
            f"output_root={out}",
            *task,
            *overrides,
        ],
        CONFIG_NAME,
    )
    return execute(plan_run(config, registry), out / f"{folder.name}_{backend}")


def rows(model: str, record: RunResult) -> list[str]:
    phases = record.efficiency.cross_attention
    lines = []
    for phase in PHASES:
        m = getattr(phases, phase) if phases else None
        if m is None:
            lines.append(f"{model:14} {record.backend.name:8} {phase:8} {record.status}")
            continue
        s = m.shape
        figures = (
            f"{m.latency.median_ms:9.3f} {m.latency.iqr_ms:8.3f} {m.memory.bytes / 2**20:9.2f}"
            if m.status == "ok"
            else f"{m.status}: {m.reason}"
        )
        lines.append(
            f"{model:14} {record.backend.name:8} {phase:8} {s.batch:5} {s.heads:5} "
            f"{s.head_dim:4} {s.nq:5} {s.nk:6} {s.padded_fraction:6.2f} {figures}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="xbench run overrides, e.g. threads=2")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated")
    args = parser.parse_args()
    overrides = (
        args.overrides
        if any(o.startswith("threads=") for o in args.overrides)
        else [
            "threads=1",
            *args.overrides,
        ]
    )
    store_plugin_configs(get_registry())
    header = (
        f"{'model':14} {'backend':8} {'phase':8} {'B':>5} {'heads':>5} {'hd':>4} {'Nq':>5} "
        f"{'Nk':>6} {'padded':>6} {'median ms':>9} {'IQR ms':>8} {'mem MiB':>9}"
    )
    lines, loads = [header], []
    with tempfile.TemporaryDirectory() as root:
        folders = published_configs(Path(root))
        for model, folder in folders.items():
            for backend in args.backends.split(","):
                record = measured(folder, TASKS[model], backend, overrides, Path(root) / "runs")
                lines += rows(model, record)
                load = record.efficiency.load_at_measure
                loads.append(load.load_1m if load else None)
    memory = "peak bytes as the measurement primitive counts them (measure/memory.py)"
    print(
        f"\nreal-shape cross-attention, random weights, {torch.get_num_threads()} threads; {memory}"
    )
    print("\n".join(lines))
    print(
        f"load average (1, 5, 15 min) at the end: {os.getloadavg()}; at each measurement: {loads}"
    )


if __name__ == "__main__":
    main()

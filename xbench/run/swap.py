"""Swap-in evaluation: weights trained with one backend, evaluated with another.

Training from scratch with each backend answers "what if I had trained with this kernel";
the question most users have is "what happens if I drop this kernel into the model I
already have". A run with ``eval.trained_with=B`` trains (once) a model whose
cross-attention is B, caches its weights by the hash of what determines them, and puts
the run's own backend in their place before testing (and an optional short fine-tune).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xbench.api.options import build_options
from xbench.atomic import write_atomic
from xbench.config.settings import EvalSettings
from xbench.records.result import Quality, SwapIn
from xbench.run.plan import RunPlan

CHECKPOINTS = "checkpoints"
# The config keys that determine trained weights; logging, timing and heatmaps do not.
WEIGHT_KEYS = ("backend", "task", "model", "trainer", "optim", "seed", "tier")
BACKEND_PARAMETERS = ".cross_attention.backend."


def training_plan(plan: RunPlan) -> RunPlan:
    """The plan that trains the weights ``plan`` evaluates: its ``trained_with`` backend
    (default options) in place of the run's own, everything else the same."""
    spec = plan.trained_with
    assert spec is not None, "training_plan needs eval.trained_with"
    options = build_options(spec.options, {}, "eval.trained_with")
    config = {k: v for k, v in plan.config.items() if k != "eval"}
    config["backend"] = {"name": spec.name, **asdict(options)}
    return replace(
        plan,
        backend=spec,
        backend_options=options,
        config=config,
        eval=EvalSettings(),
        trained_with=None,
    )


def weights_key(plan: RunPlan) -> str:
    """Hash of the training plan's weight-determining settings and its code and inputs."""
    relevant = {k: plan.config.get(k) for k in WEIGHT_KEYS}
    relevant["revision"] = asdict(plan.revision)
    text = json.dumps(relevant, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shared_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights without any backend's own parameters or buffers (a swapped-in
    backend keeps its own)."""
    return {k: v for k, v in model.state_dict().items() if BACKEND_PARAMETERS not in k}


def load_shared(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` into ``model``; only the backends' own entries may be missing."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    stray = [k for k in missing if BACKEND_PARAMETERS not in k] + list(unexpected)
    if stray:
        raise RuntimeError(f"checkpoint does not fit the model: {', '.join(stray[:5])}")


def swap_in(
    plan: RunPlan,
    model: nn.Module,
    train: Callable[[RunPlan], tuple[dict[str, torch.Tensor], Quality]],
) -> SwapIn:
    """Load the trained weights into ``model`` (``train(training plan)`` makes them when no
    checkpoint holds them yet) and say what was swapped."""
    trainer_plan = training_plan(plan)
    folder = Path(plan.config.get("output_root") or "xbench_runs") / CHECKPOINTS
    key = weights_key(trainer_plan)
    weights, info = folder / f"{key}.pt", folder / f"{key}.json"
    reused = weights.is_file() and info.is_file()
    if reused:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        trained_quality = Quality.from_dict(json.loads(info.read_text())["quality"])
    else:
        state, trained_quality = train(trainer_plan)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_atomic(weights, buffer.getvalue())
        meta = _meta(trainer_plan, trained_quality)
        write_atomic(info, json.dumps(meta, indent=2).encode())
    load_shared(model, state)
    return SwapIn(
        trained_with=trainer_plan.backend.name,
        evaluated_with=plan.backend.name,
        finetune_steps=plan.eval.finetune_steps,
        checkpoint=str(weights),
        reused=reused,
        trained_quality=trained_quality,
    )


def _meta(plan: RunPlan, quality: Quality) -> dict[str, Any]:
    return {
        "trained_with": plan.backend.name,
        "config": {k: plan.config.get(k) for k in WEIGHT_KEYS},
        "quality": quality.to_dict(),
    }

"""Cached against full re-decoding, side by side: greedy tokens/s on a task's test split.

    python benchmarks/decode_speed.py task=qa [backend=naive] [any other `xbench run` override]
    python benchmarks/decode_speed.py task=translation --rounds 3

Runs keep no weights, so the script trains the run's model in-process first (the composed
config, default steps; validation is skipped, it does not change the weights). It then
decodes every test batch with ``generate(cache=True)`` and ``generate(cache=False)`` in
alternation (the order flips every round, so drift in the machine's load hits both), in
one process on the same batches, checks that both wrote the same tokens, and prints each
path's tokens/s and their ratio. Tokens are counted as the test loop counts them. Not a
pytest file (pytest collects ``test_*.py`` only).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.utilities import move_data_to_device

from xbench.config.compose import CONFIG_NAME, store_plugin_configs
from xbench.config.preflight import compose_run_config
from xbench.registry import get_registry
from xbench.run.module import Seq2SeqModule
from xbench.run.plan import RunPlan, plan_run
from xbench.run.runner import build_model


def trained_module(plan: RunPlan) -> Seq2SeqModule:
    """The run's task and model, trained as ``xbench run`` would (without validation)."""
    L.seed_everything(plan.config.get("seed", 0), workers=True, verbose=False)
    task = plan.task.build(plan.task_options)
    model = build_model(plan, task)
    trainer_cfg = dict(plan.config["trainer"])
    module = Seq2SeqModule(model, task, plan.optim, int(trainer_cfg.get("max_steps") or 1000))
    with tempfile.TemporaryDirectory() as root:
        trainer_cfg.update(
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            default_root_dir=root,
        )
        L.Trainer(**trainer_cfg).fit(module, datamodule=task.datamodule)
    return module.eval()


def _timed(call: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    ids = call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return ids, time.perf_counter() - start


def compare(module: Seq2SeqModule, rounds: int) -> dict[str, float]:
    """Seconds and tokens of each path over ``rounds`` passes of the test split, and how
    many test items the two paths decoded differently."""
    model, task = module.model, module.task
    tokenizer, device = task.tokenizer, module.device
    task.datamodule.setup("test")
    batches = [move_data_to_device(b, device) for b in task.datamodule.test_dataloader()]
    seconds = {True: 0.0, False: 0.0}
    tokens = {True: 0, False: 0}
    differing = 0
    for round_ in range(rounds):
        for batch in batches:
            ids = {}
            for cache in (True, False) if round_ % 2 == 0 else (False, True):
                ids[cache], spent = _timed(
                    lambda cache=cache, batch=batch: model.generate(
                        batch["source"],
                        tokenizer.bos_id,
                        tokenizer.eos_id,
                        module.max_new_tokens,
                        batch.get("prompt"),
                        cache=cache,
                    ),
                    device,
                )
                seconds[cache] += spent
                real = (ids[cache] != tokenizer.pad_id) | (ids[cache] == tokenizer.eos_id)
                tokens[cache] += int(real.sum())
            if round_ == 0:
                same = ids[True].shape == ids[False].shape and bool((ids[True] == ids[False]).all())
                differing += 0 if same else len(ids[True])
    return {
        "cached_tokens_per_second": tokens[True] / seconds[True],
        "full_tokens_per_second": tokens[False] / seconds[False],
        "tokens": tokens[True],
        "batches": len(batches),
        "differing_items": differing,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="xbench run overrides, e.g. task=qa")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the test split")
    args = parser.parse_args()
    registry = get_registry()
    store_plugin_configs(registry)
    plan = plan_run(compose_run_config([*args.overrides, "logger=none"], CONFIG_NAME), registry)
    if plan.config.get("threads"):
        torch.set_num_threads(int(plan.config["threads"]))
    started = time.perf_counter()
    module = trained_module(plan)
    trained = time.perf_counter() - started
    with torch.no_grad():
        figures = compare(module, args.rounds)
    cached, full = figures["cached_tokens_per_second"], figures["full_tokens_per_second"]
    print(
        f"{plan.backend.name} × {plan.task.name} on {module.device} "
        f"({torch.get_num_threads()} threads), trained {trained:.0f} s; "
        f"{figures['batches']} test batches × {args.rounds} rounds, "
        f"{figures['tokens']} tokens per path\n"
        f"  cached decoding: {cached:10.1f} tokens/s\n"
        f"  full re-decoding: {full:9.1f} tokens/s\n"
        f"  speed-up: {cached / full:.2f}x; items decoded differently: "
        f"{figures['differing_items']}"
    )


if __name__ == "__main__":
    main()

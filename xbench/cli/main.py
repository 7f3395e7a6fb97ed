"""The ``xbench`` command: ``run`` (Hydra), ``plugins``, ``check-backend``, ``bench``,
``leaderboard``.

Arguments that look like Hydra overrides (``key=value``) without a subcommand mean ``run``.
``sys.argv`` is restored before training so that Lightning's DDP launcher, which re-runs
``sys.argv`` in each worker, re-enters ``xbench run`` with the same overrides.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from xbench.api.errors import UserError

USAGE = """usage: xbench <command> [args]

commands:
  run [-m] [key=value ...]   train and evaluate backend × task (Hydra overrides; -m sweeps;
                             seeds=N: N seeds per cell; resume=false: re-run finished cells)
  plugins [-v]               list installed backends and tasks (-v: with their options,
                             defaults and allowed values)
  check-backend NAME [setting=value ...] [pytest args]
                             run the conformance kit (xbench.testing) on one backend
  bench [key=value ...]      time the cross-attention op alone over a grid of shapes
                             (backend=a,b,... in one run; presets: bench=quick|scaling|...)
  leaderboard [DIR ...] [--out DIR] [--wandb]
                             tables and plots from the run records under DIRs
                             (default: the output root)

examples:
  xbench run backend=flash task=qa
  xbench run -m backend=naive,flash,uniform task=qa seeds=3
  xbench run --cfg job        show the composed config
  xbench check-backend uniform uses_queries=false -x
  xbench bench backend=flash,sparse,linear,naive bench=scaling
"""

_original_argv: list[str] = []


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    command, rest = (args[0], args[1:]) if args[0] in COMMANDS else ("run", args)
    try:
        return COMMANDS[command](rest)
    except UserError as error:
        report_error(error)
        return 2


def report_error(error: Exception) -> None:
    """One plain line on stderr (no rich wrapping, no traceback)."""
    print(f"xbench: error: {error}", file=sys.stderr)


def run_command(args: list[str]) -> int:
    """Compose the config with Hydra and run one job (or a sweep with ``-m``)."""
    import hydra
    from hydra._internal.utils import get_args_parser

    from xbench.config.compose import (
        CONFIG_NAME,
        CONFIG_PATH,
        check_plugin_choices,
        expand_seeds,
        store_plugin_configs,
    )
    from xbench.registry import get_registry

    args = expand_seeds(args)
    registry = get_registry()
    parsed, _ = get_args_parser().parse_known_args(args)
    check_plugin_choices(parsed.overrides, registry)
    store_plugin_configs(registry)
    check_before_launch(parsed, registry)
    app = hydra.main(config_path=CONFIG_PATH, config_name=CONFIG_NAME, version_base="1.3")(
        _hydra_job
    )
    global _original_argv
    _original_argv = list(sys.argv)
    sys.argv = [sys.argv[0] if sys.argv else "xbench", *args]
    try:
        app()
    finally:
        sys.argv = _original_argv
    if {"-m", "--multirun"} & set(args):
        from xbench.leaderboard.sweep_callback import sweep_exit_code

        return sweep_exit_code()  # non-zero unless every cell finished `ok`
    return 0


def check_before_launch(parsed, registry) -> None:
    """Compose and plan what Hydra is about to run — one cell, or for a sweep every swept
    value — so that a bad name or value is one line (exit 2) before any cell starts."""
    from xbench.config.compose import CONFIG_NAME
    from xbench.config.preflight import check_output_root, compose_run_config, sweep_cells
    from xbench.run.plan import plan_run

    cells = sweep_cells(parsed.overrides) if parsed.multirun else [parsed.overrides]
    only_shows = parsed.cfg or parsed.info or parsed.help or parsed.hydra_help
    for overrides in cells:
        config = compose_run_config(overrides, parsed.config_name or CONFIG_NAME)
        if not only_shows:
            plan_run(config, registry)
            check_output_root(config["output_root"])


def _hydra_job(cfg) -> None:
    """Hydra's task function: one backend × task cell."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from xbench.integrations.wandb import sweep_group
    from xbench.leaderboard.sweep_callback import note_user_error
    from xbench.registry import get_registry
    from xbench.run.plan import plan_run
    from xbench.run.resume import finished_record, reuse, wants_resume
    from xbench.run.runner import RecordNotWritten, execute
    from xbench.views.run_summary import print_summary

    sys.argv = list(_original_argv) or sys.argv  # what Lightning's DDP launcher re-runs
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if multirun and config.get("logger", {}).get("name") == "wandb":
        config["logger"]["group"] = sweep_group(config["logger"], run_dir.parent)
    try:
        plan = plan_run(config, get_registry())
        resume = wants_resume(config, multirun)
        found = finished_record(plan, Path(config["output_root"])) if resume else None
        if found:
            reuse(found, run_dir)
            print(
                f"skipped {plan.backend.name} × {plan.task.name} seed={config.get('seed')}: "
                f"finished as {found[0]} (resume=false runs it again)"
            )
            return
        result = execute(plan, run_dir)
    except UserError as error:
        report_error(error)
        if multirun:
            note_user_error(run_dir, str(error))  # counted at the end of the sweep
            return
        raise SystemExit(2) from None
    except RecordNotWritten as error:  # the figures stay on screen; the line says what's lost
        print_summary([error.result])
        report_error(error)
        if multirun:
            return
        raise SystemExit(1) from None
    print_summary([result])
    print(f"run record: {run_dir / 'result.json'}", flush=True)  # whole, never wrapped
    if result.status != "ok" and not multirun:
        raise SystemExit(1)


def plugins_command(args: list[str]) -> int:
    """List every installed backend and task with the plugin that supplied it; ``-v`` adds
    each option's default, help and allowed values (choices or range)."""
    from xbench.api.options import describe_options
    from xbench.registry import get_registry

    verbose = "-v" in args or "--verbose" in args
    registry = get_registry()
    table = Table(title="xbench plugins")
    for column in ("kind", "name", "plugin", "distribution", "version", "description"):
        table.add_column(column, overflow="fold")
    for kind, entries in (("backend", registry.backends), ("task", registry.tasks)):
        for name, entry in sorted(entries.items()):
            description = entry.spec.description
            if verbose:
                rows = describe_options(entry.spec.options)
                description += "".join(f"\n  {row.text(f'{kind}.')}" for row in rows)
            table.add_row(
                kind,
                name,
                entry.plugin,
                entry.distribution or "-",
                entry.version or "-",
                description,
            )
    Console(width=max(Console().width, 120)).print(table)
    return 0


def check_backend(args: list[str]) -> int:
    """Run the backend conformance kit on an installed backend (imports pytest lazily)."""
    from xbench.cli.check_backend import check_backend_command

    return check_backend_command(args)


def leaderboard(args: list[str]) -> int:
    """Tables and plots of the run records under some folders (see xbench.leaderboard.publish)."""
    from xbench.leaderboard.publish import leaderboard_command

    return leaderboard_command(args)


def bench(args: list[str]) -> int:
    """The cross-attention op alone over a grid of shapes (see xbench.bench)."""
    from xbench.bench import bench_command

    return bench_command(args)


COMMANDS = {
    "run": run_command,
    "plugins": plugins_command,
    "check-backend": check_backend,
    "leaderboard": leaderboard,
    "bench": bench,
}

"""The leaderboard as a wandb run: a ``wandb.Table`` per task and tier and the Pareto plots, in the
sweep's group, online or offline like every xbench run (:mod:`xbench.integrations.wandb`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xbench.integrations.wandb import resolve_mode, run_settings, wandb_project
from xbench.leaderboard.board import TaskBoard, data_records


def log_leaderboard(
    boards: list[TaskBoard],
    plots: dict[str, Path],
    settings: dict[str, Any],
    run_dir: Path,
    group: str,
) -> Path | None:
    """One wandb run holding a ``wandb.Table`` per board (``leaderboard/<board key>``, the
    task plus a tier other than ``default``) and the Pareto plots (``pareto/<board key>``);
    returns its local folder (None when disabled)."""
    import wandb

    mode = resolve_mode(settings.get("mode", "auto"))
    if mode == "disabled":
        return None
    run = wandb.init(
        project=wandb_project(settings),
        entity=settings.get("entity"),
        group=group,
        job_type="leaderboard",
        name=f"leaderboard-{group}",
        dir=str(run_dir),
        mode=mode,
        settings=run_settings(),
    )
    for board in boards:
        records = data_records(board)
        table = wandb.Table(columns=list(records[0]), data=[list(r.values()) for r in records])
        logged: dict[str, Any] = {f"leaderboard/{board.key}": table}
        if board.key in plots:
            logged[f"pareto/{board.key}"] = wandb.Image(str(plots[board.key]))
        run.log(logged)
    local = Path(run.dir).parent
    run.finish()
    return local

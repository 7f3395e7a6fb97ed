"""The Hydra callback that ends every sweep with its leaderboard (configs/xbench.yaml,
``hydra.callbacks.leaderboard``). It runs in the launching process after the last cell,
whatever launcher ran the cells, and reads only their run records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


class LeaderboardCallback(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from xbench.integrations.wandb import sweep_group, wandb_enabled
        from xbench.leaderboard.publish import publish

        sweep_dir = Path(config.hydra.sweep.dir)
        settings = OmegaConf.to_container(config.logger, resolve=True) if "logger" in config else {}
        publish(
            [sweep_dir],
            sweep_dir,
            wandb_settings=settings if wandb_enabled(settings) else None,
            group=sweep_group(settings, sweep_dir),
        )

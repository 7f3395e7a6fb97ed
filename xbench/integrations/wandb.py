"""wandb through Lightning's WandbLogger, without ever blocking a run on the network.

``mode=auto`` goes online only when credentials are configured (``WANDB_API_KEY`` or a
netrc entry) and the server answers a short connection probe; otherwise the run is
recorded offline in the run directory and can be synced later with ``wandb sync``.
``mode=online`` with a server that does not answer is one line of ``UserError`` within
seconds, instead of wandb's own long wait. The cells of a sweep share a wandb group named after the
sweep, and the sweep's leaderboard is one more run of that group (online or offline alike).
"""

from __future__ import annotations

import functools
import logging
import netrc
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from xbench.api.errors import UserError
from xbench.records.summary import headline

if TYPE_CHECKING:
    from xbench.records.result import RunResult

log = logging.getLogger(__name__)
LOGGERS = ("wandb", "none")
MODES = ("auto", "online", "offline", "disabled")
DEFAULT_PROJECT = "xbench"
DEFAULT_BASE_URL = "https://api.wandb.ai"
PROBE_TIMEOUT_S = 2.0


def check_logger_settings(settings: dict[str, Any]) -> None:
    """Refuse an unknown ``logger=`` or ``logger.mode=`` with one line, before anything runs."""
    name, mode = settings.get("name", "none"), settings.get("mode", "auto")
    if name not in LOGGERS:
        raise UserError(f"logger={name!r} is not available; choose one of: {', '.join(LOGGERS)}")
    if name == "wandb" and mode not in MODES:
        raise UserError(f"logger.mode={mode!r} is not allowed; choose one of: {', '.join(MODES)}")
    if name == "wandb" and mode == "online":
        resolve_mode(mode)  # an unreachable server fails here, before any data is built


def wandb_enabled(settings: dict[str, Any]) -> bool:
    """Whether these logger settings ask for a wandb run (``logger=wandb``, not disabled)."""
    return settings.get("name") == "wandb" and settings.get("mode") != "disabled"


def wandb_project(settings: dict[str, Any]) -> str:
    """The wandb project: ``logger.project`` if set, else ``xbench``."""
    return settings.get("project") or DEFAULT_PROJECT


def has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc().hosts
    except (OSError, netrc.NetrcParseError):
        return False
    return any("wandb" in host for host in hosts)


def resolve_mode(mode: str) -> str:
    """The wandb mode to use: an explicit ``WANDB_MODE`` wins, then the config.

    ``auto`` is online only with credentials and a server that answers the probe (one
    warning line says when it falls back to offline); ``online`` with a server that does
    not answer raises :class:`UserError`.
    """
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if mode not in ("auto", "online"):
        return mode
    if mode == "auto" and not has_credentials():
        return "offline"
    url = base_url()
    problem = server_unreachable(url)
    if problem is None:
        return "online"
    if mode == "online":
        raise UserError(
            f"logger.mode=online but the wandb server {url} cannot be reached ({problem}); "
            "use logger.mode=offline (sync later with `wandb sync`) or logger.mode=auto"
        )
    log.warning("wandb server %s cannot be reached (%s); logging offline instead", url, problem)
    return "offline"


def base_url() -> str:
    """The wandb server: ``WANDB_BASE_URL`` or wandb's public API host."""
    return os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL


@functools.cache
def server_unreachable(url: str) -> str | None:
    """Why the server at ``url`` does not accept a TCP connection within
    :data:`PROBE_TIMEOUT_S` (name lookup included), or None when it does. Nothing is sent;
    probed once per process."""
    parts = urlsplit(url if "//" in url else f"//{url}")
    if not parts.hostname:
        return f"no host in {url!r}"
    try:
        port = parts.port or (80 if parts.scheme == "http" else 443)
    except ValueError:
        return f"bad port in {url!r}"
    outcome: list[str | None] = []

    def connect() -> None:  # in a thread: a name lookup has no timeout of its own
        try:
            socket.create_connection((parts.hostname, port), timeout=PROBE_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as error:
            outcome.append(error.strerror or str(error) or type(error).__name__)

    probe = threading.Thread(target=connect, name="wandb-probe", daemon=True)
    probe.start()
    probe.join(PROBE_TIMEOUT_S + 0.5)
    return outcome[0] if outcome else f"no answer within {PROBE_TIMEOUT_S:g} s"


def sweep_group(settings: dict[str, Any], sweep_dir: Path) -> str:
    """The wandb group of a sweep's runs: ``logger.group`` if set, else the sweep folder."""
    return settings.get("group") or Path(sweep_dir).name


def run_settings():
    """wandb settings every xbench run uses: a bounded start, no console capture."""
    import wandb

    return wandb.Settings(init_timeout=30, silent=True, console="off")


def make_wandb_logger(settings: dict[str, Any], run_dir: Path, run_id: str, config: dict):
    """A WandbLogger writing under ``run_dir`` (``run_dir/wandb/...``)."""
    from lightning.pytorch.loggers import WandbLogger

    mode = resolve_mode(settings.get("mode", "auto"))
    logger = WandbLogger(
        project=wandb_project(settings),
        entity=settings.get("entity"),
        group=settings.get("group"),
        tags=list(settings.get("tags") or []),
        name=run_id,
        id=run_id,
        save_dir=str(run_dir),
        mode=mode,
        config=config,
        settings=run_settings(),
    )
    # Lightning always passes wandb.init(anonymous=None), which wandb warns is a setting
    # without effect; leaving it out starts the same run without that warning.
    logger._wandb_init.pop("anonymous", None)
    return logger


def log_summary(logger, result: RunResult) -> None:
    """Put the run record's headline figures into the wandb run summary, then finish it."""
    run = logger.experiment
    run.summary.update(headline(result))
    run.finish()

"""RunResult: everything one run measured, as one versioned JSON record.

Reporting, caching and resume read only these records; wandb and the console table are
views of them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xbench.atomic import write_atomic

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
STATUSES = ("ok", "oom", "unsupported", "failed", "diverged")
RESULT_FILE = "result.json"
# Keys that do not change what a run computes, so they stay out of the config hash.
NOT_HASHED = ("hydra", "logger", "output_root", "threads", "resume")
# Folders inside a run directory that never hold run records: not searched.
_NOT_RUN_DIRS = {"wandb", "artifacts", ".hydra", "lightning_logs", "checkpoints", "__pycache__"}


def config_hash(config: dict[str, Any]) -> str:
    """Stable hash of the settings that determine a run's figures."""
    relevant = {k: v for k, v in config.items() if k not in NOT_HASHED}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


@dataclass
class RunResult:
    """One run: identity, what ran, status, quality, efficiency and environment."""

    run_id: str
    config_hash: str
    xbench_version: str
    git_sha: str | None
    backend: dict[str, Any]
    task: dict[str, Any]
    model: dict[str, Any]
    seed: int
    status: str = "ok"
    error: str | None = None
    quality: dict[str, Any] = field(default_factory=dict)
    efficiency: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    # What code and inputs produced it (see xbench.run.revision); resume compares it.
    revision: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat())
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True, default=str)

    def write(self, run_dir: str | Path) -> Path:
        """Write ``result.json`` into ``run_dir`` atomically (temp file, then rename)."""
        return write_atomic(Path(run_dir) / RESULT_FILE, self.to_json().encode())

    @classmethod
    def load(cls, path: str | Path) -> RunResult:
        data = json.loads(Path(path).read_text())
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(
                f"{path}: schema_version {data.get('schema_version')} is not {SCHEMA_VERSION}"
            )
        return cls(**data)


def find_results(roots: Iterable[str | Path]) -> Iterator[tuple[Path, RunResult]]:
    """Every readable run record under ``roots`` (files or folders), in path order.

    A record that cannot be read (another schema, a hand-edited file) is skipped with a
    warning: one bad file must not hide the others.
    """
    for root in roots:
        root = Path(root)
        paths = [root] if root.is_file() else sorted(_record_paths(root))
        for path in paths:
            try:
                yield path, RunResult.load(path)
            except (OSError, ValueError, TypeError) as error:
                log.warning("skipping %s: %s", path, error)


def _record_paths(root: Path) -> Iterator[Path]:
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in _NOT_RUN_DIRS]
        if RESULT_FILE in files:
            yield Path(folder) / RESULT_FILE

"""RunResult: everything one run measured, as one versioned JSON record.

Reporting, caching and resume read only these records; wandb and the console table are
views of them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xbench.atomic import write_atomic

SCHEMA_VERSION = 1
STATUSES = ("ok", "oom", "unsupported", "failed", "diverged")
RESULT_FILE = "result.json"
# Keys that do not change what a run computes, so they stay out of the config hash.
_NOT_HASHED = ("hydra", "logger", "output_root", "threads")


def config_hash(config: dict[str, Any]) -> str:
    """Stable hash of the settings that determine a run's figures."""
    relevant = {k: v for k, v in config.items() if k not in _NOT_HASHED}
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

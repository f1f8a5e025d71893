"""The worker's knobs, read from the environment when a worker is built.

Kept apart from `chalicelib.config` so a worker (or a test) can be built with
other values without clearing a process-wide cache; every name is listed in
docs/actions.md ("The worker").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from chalicelib.config import settings

MIB = 1024 * 1024


def _number(name: str, default: float, *, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum:g}, got {raw!r}")
    return value


def _default_cache_dir() -> Path:
    """Lambda can only write /tmp; elsewhere the cache sits with the local cloud's other state."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return Path("/tmp/attune-pack-cache")  # noqa: S108 - Lambda's only writable directory
    return Path(settings().data_dir) / "pack-cache"


@dataclass(frozen=True)
class WorkerSettings:
    """What one worker process runs with."""

    concurrency: int = 8
    heartbeat_seconds: float = 5.0
    default_timeout_s: float = 600.0
    max_output_bytes: int = MIB
    action_grace_s: float = 5.0
    api_url: str = "http://127.0.0.1:18080"
    pack_cache_dir: Path = Path(".attune/pack-cache")


def worker_settings() -> WorkerSettings:
    """The settings the environment asks for now (not cached: tests change the environment)."""
    return WorkerSettings(
        concurrency=int(_number("ATTUNE_WORKER_CONCURRENCY", 8, minimum=1)),
        heartbeat_seconds=_number("ATTUNE_WORKER_HEARTBEAT_SECONDS", 5.0, minimum=0.05),
        default_timeout_s=_number("ATTUNE_ACTION_DEFAULT_TIMEOUT", 600.0, minimum=1),
        max_output_bytes=int(_number("ATTUNE_MAX_OUTPUT_BYTES", MIB, minimum=1024)),
        action_grace_s=_number("ATTUNE_ACTION_GRACE_SECONDS", 5.0, minimum=0),
        api_url=(os.environ.get("ATTUNE_API_URL") or f"http://127.0.0.1:{settings().api_port}").rstrip("/"),
        pack_cache_dir=Path(os.environ.get("ATTUNE_PACK_CACHE_DIR") or _default_cache_dir()),
    )

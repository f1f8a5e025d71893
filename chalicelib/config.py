"""Settings read once from the environment.

Every knob a deployment or the local cloud can turn lives here, so that the
README's settings table and the code cannot drift apart: `docs/settings.md`
lists exactly these names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


def _float(name: str, default: float, *, minimum: float) -> float:
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


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    """Process-wide configuration; built from the environment by `settings()`."""

    database_url: str | None
    aws_endpoint_url: str | None
    aws_region: str
    stack_name: str
    api_host: str
    api_port: int
    ws_port: int
    data_dir: str
    access_token_ttl: int
    refresh_token_ttl: int
    max_body_bytes: int
    max_archive_bytes: int
    db_pool_min: int
    db_pool_max: int
    heartbeat_seconds: float
    reaper_stale_seconds: float

    @property
    def resource_prefix(self) -> str:
        """Prefix for every AWS resource name of this stack (queues, bucket, secrets)."""
        return self.stack_name


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The settings of this process; cached because the environment is fixed at start."""
    return Settings(
        database_url=os.environ.get("ATTUNE_DATABASE_URL") or None,
        aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        aws_region=os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
        stack_name=os.environ.get("ATTUNE_STACK_NAME", "attune"),
        api_host=os.environ.get("ATTUNE_API_HOST", "127.0.0.1"),
        api_port=_int("ATTUNE_API_PORT", 18080),
        ws_port=_int("ATTUNE_WS_PORT", 18081),
        data_dir=os.environ.get("ATTUNE_DATA_DIR", ".attune"),
        access_token_ttl=_int("ATTUNE_ACCESS_TOKEN_TTL", 900),
        refresh_token_ttl=_int("ATTUNE_REFRESH_TOKEN_TTL", 7 * 24 * 3600),
        max_body_bytes=_int("ATTUNE_MAX_BODY_BYTES", 1024 * 1024),
        max_archive_bytes=_int("ATTUNE_MAX_ARCHIVE_BYTES", 6 * 1024 * 1024),
        db_pool_min=_int("ATTUNE_DB_POOL_MIN", 1),
        db_pool_max=_int("ATTUNE_DB_POOL_MAX", 10),
        heartbeat_seconds=_float("ATTUNE_HEARTBEAT_SECONDS", 2.0, minimum=0.05),
        reaper_stale_seconds=_float("ATTUNE_REAPER_STALE_SECONDS", 30.0, minimum=0.1),
    )

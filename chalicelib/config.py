"""Settings read once from the environment.

Every knob a deployment or the local cloud can turn lives here, so that the
README's settings table and the code cannot drift apart: `docs/settings.md`
lists exactly these names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from chalicelib.core.netpolicy import parse_allow_hosts
from chalicelib.core.ratelimit import Backoff, Limit

MIB = 1024 * 1024


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


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = os.environ.get(name) or default
    if raw not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return raw


def _heartbeat_seconds() -> float:
    """One period for every heartbeat: each role's liveness beat and each running execution's beat."""
    return _float("ATTUNE_HEARTBEAT_SECONDS", 2.0, minimum=0.05)


def _limit(per_s_name: str, burst_name: str, per_s: float, burst: int) -> Limit:
    return Limit(per_s=_float(per_s_name, per_s, minimum=0.001), burst=int(_float(burst_name, burst, minimum=1)))


@dataclass(frozen=True)
class LimitSettings:
    """Rate limits and the password-hash bound (docs/api.md, "Rate limits")."""

    user: Limit  # each non-admin user's /api/v1 calls (and each running action's)
    webhook: Limit  # each webhook trigger's calls
    auth: Limit  # /auth/login and /auth/register, per client address and per user name
    login_backoff: Backoff
    hash_concurrency: int  # password hashes at once per process (64 MiB of Argon2 memory each)
    hash_wait_s: float  # how long a login queues for a hash slot before a 503


def limit_settings() -> LimitSettings:
    """The limits as the environment asks for them (cached as part of `settings()`)."""
    return LimitSettings(
        user=_limit("ATTUNE_RATE_LIMIT_PER_S", "ATTUNE_RATE_LIMIT_BURST", 50.0, 200),
        webhook=_limit("ATTUNE_WEBHOOK_RATE_LIMIT_PER_S", "ATTUNE_WEBHOOK_RATE_LIMIT_BURST", 100.0, 500),
        auth=_limit("ATTUNE_AUTH_RATE_LIMIT_PER_S", "ATTUNE_AUTH_RATE_LIMIT_BURST", 5.0, 50),
        login_backoff=Backoff(
            after=int(_float("ATTUNE_LOGIN_BACKOFF_AFTER", 5, minimum=1)),
            max_s=_float("ATTUNE_LOGIN_BACKOFF_MAX_S", 60.0, minimum=1),
        ),
        hash_concurrency=int(_float("ATTUNE_PASSWORD_HASH_CONCURRENCY", 4, minimum=1)),
        hash_wait_s=_float("ATTUNE_PASSWORD_HASH_WAIT_S", 3.0, minimum=0),
    )


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
    limits: LimitSettings
    max_body_bytes: int
    max_archive_bytes: int
    db_pool_min: int
    db_pool_max: int
    heartbeat_seconds: float
    reaper_stale_seconds: float
    outbox_publish: str
    outbox_max_in_flight: int
    outbox_send_below: int
    outbox_resend_after_seconds: float
    local_visibility_seconds: int
    log_level: str
    pack_bucket: str | None
    http_allow_private: bool
    deps_dir: str | None
    http_allow_hosts: frozenset[str]
    expected_roles: tuple[str, ...]
    states_role_arn: str | None
    ws_endpoint_url: str | None

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
        limits=limit_settings(),
        max_body_bytes=_int("ATTUNE_MAX_BODY_BYTES", 1024 * 1024),
        max_archive_bytes=_int("ATTUNE_MAX_ARCHIVE_BYTES", 6 * 1024 * 1024),
        db_pool_min=_int("ATTUNE_DB_POOL_MIN", 1),
        db_pool_max=_int("ATTUNE_DB_POOL_MAX", 10),
        heartbeat_seconds=_heartbeat_seconds(),
        reaper_stale_seconds=_float("ATTUNE_REAPER_STALE_SECONDS", 30.0, minimum=0.1),
        outbox_publish=_choice("ATTUNE_OUTBOX_PUBLISH", "inline", ("inline", "relay")),
        outbox_max_in_flight=_int("ATTUNE_OUTBOX_MAX_IN_FLIGHT", 100),
        outbox_send_below=max(0, _int("ATTUNE_OUTBOX_SEND_BELOW", 1)),
        outbox_resend_after_seconds=_float("ATTUNE_OUTBOX_RESEND_AFTER_SECONDS", 30.0, minimum=1.0),
        local_visibility_seconds=max(2, _int("ATTUNE_LOCAL_VISIBILITY_SECONDS", 30)),
        log_level=(os.environ.get("ATTUNE_LOG_LEVEL") or "INFO").upper(),
        # The HTTP runner's SSRF guard (core.netpolicy): loopback, link-local and private
        # destinations are refused unless allowed here.
        http_allow_private=(os.environ.get("ATTUNE_HTTP_ALLOW_PRIVATE") or "false").lower() in ("1", "true", "yes"),
        http_allow_hosts=parse_allow_hosts(os.environ.get("ATTUNE_HTTP_ALLOW_HOSTS")),
        deps_dir=os.environ.get("ATTUNE_DEPS_DIR") or None,
        pack_bucket=os.environ.get("ATTUNE_PACK_BUCKET") or None,
        # Set by `attune dev` for its roles: the roles /health waits for.
        expected_roles=tuple(r for r in os.environ.get("ATTUNE_EXPECTED_ROLES", "").split(",") if r),
        # The role Step Functions assumes to run workflows (infra: WorkflowStatesRole).
        states_role_arn=os.environ.get("ATTUNE_STATES_ROLE_ARN") or None,
        # The WebSocket API's `@connections` endpoint (infra: the notifier's environment); unset locally,
        # where the gateway of `attune dev` on ATTUNE_WS_PORT serves it.
        ws_endpoint_url=(os.environ.get("ATTUNE_WS_ENDPOINT_URL") or "").rstrip("/") or None,
    )


def _default_cache_dir() -> Path:
    """Lambda can only write /tmp; elsewhere the cache sits with the local cloud's other state."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return Path("/tmp/attune-pack-cache")  # noqa: S108 - Lambda's only writable directory
    return Path(settings().data_dir) / "pack-cache"


@dataclass(frozen=True)
class WorkerSettings:
    """What one worker process runs with (docs/actions.md, "The worker")."""

    concurrency: int = 8
    heartbeat_seconds: float = 2.0
    default_timeout_s: float = 600.0
    max_output_bytes: int = MIB
    action_grace_s: float = 5.0
    api_url: str = "http://127.0.0.1:18080"
    pack_cache_dir: Path = Path(".attune/pack-cache")
    action_runner_function: str | None = None  # set on AWS: tenant code runs in this Lambda, not here


@dataclass(frozen=True)
class SandboxSettings:
    """How action processes are confined (docs/actions.md, "Sandbox")."""

    mode: str = "auto"  # required | auto | off
    memory_mb: int = 1024
    processes: int = 128
    file_size_mb: int = 100
    cpu_seconds: float | None = None  # None: the action's timeout


def sandbox_settings() -> SandboxSettings:
    """The sandbox settings as the environment asks for them now.

    Not cached, like `worker_settings()`: a test turns the sandbox off for
    one run without clearing a process-wide cache.
    """
    cpu = os.environ.get("ATTUNE_ACTION_CPU_SECONDS")
    return SandboxSettings(
        mode=_choice("ATTUNE_SANDBOX", "auto", ("required", "auto", "off")),
        memory_mb=int(_float("ATTUNE_ACTION_MEMORY_MB", 1024, minimum=64)),
        processes=int(_float("ATTUNE_ACTION_MAX_PROCESSES", 128, minimum=8)),
        file_size_mb=int(_float("ATTUNE_ACTION_FILE_SIZE_MB", 100, minimum=1)),
        cpu_seconds=_float("ATTUNE_ACTION_CPU_SECONDS", 0, minimum=1) if cpu and cpu.strip() else None,
    )


def worker_settings() -> WorkerSettings:
    """The worker's settings as the environment asks for them now.

    Not cached, unlike `settings()`: a worker (or a test) is built with the
    values of its moment without clearing a process-wide cache.
    """
    return WorkerSettings(
        concurrency=int(_float("ATTUNE_WORKER_CONCURRENCY", 8, minimum=1)),
        heartbeat_seconds=_heartbeat_seconds(),
        default_timeout_s=_float("ATTUNE_ACTION_DEFAULT_TIMEOUT", 600.0, minimum=1),
        max_output_bytes=int(_float("ATTUNE_MAX_OUTPUT_BYTES", MIB, minimum=1024)),
        action_grace_s=_float("ATTUNE_ACTION_GRACE_SECONDS", 5.0, minimum=0),
        api_url=(os.environ.get("ATTUNE_API_URL") or f"http://127.0.0.1:{settings().api_port}").rstrip("/"),
        pack_cache_dir=Path(os.environ.get("ATTUNE_PACK_CACHE_DIR") or _default_cache_dir()),
        action_runner_function=os.environ.get("ATTUNE_ACTION_RUNNER_FUNCTION") or None,
    )


@dataclass(frozen=True)
class SensorSettings:
    """How sensors poll (docs/sensors.md): `watch_dirs` maps a tenant name (or `*`) to host dirs its sensors see."""

    watch_dirs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    timeout_s: float = 30.0


def parse_watch_dirs(raw: str | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`tenant=/dir[:/dir...];*=/dir`: which host directories the sandbox mounts read-only for whose sensors.

    Absolute paths only, so what a sensor sees never depends on a process's cwd.
    """
    found: list[tuple[str, tuple[str, ...]]] = []
    for entry in (raw or "").split(";"):
        if not entry.strip():
            continue
        tenant, sep, dirs = entry.partition("=")
        paths = tuple(os.path.normpath(p.strip()) for p in dirs.split(":") if p.strip())
        if not sep or not tenant.strip() or not paths:
            raise ValueError(f"ATTUNE_SENSOR_WATCH_DIRS entries are 'tenant=/dir[:/dir]', got {entry!r}")
        relative = [p for p in paths if not os.path.isabs(p)]
        if relative:
            raise ValueError(f"ATTUNE_SENSOR_WATCH_DIRS needs absolute directories, got {relative}")
        found.append((tenant.strip(), paths))
    return tuple(found)


def sensor_settings() -> SensorSettings:
    """The sensor settings as the environment asks for them now (not cached, like `sandbox_settings()`)."""
    return SensorSettings(
        watch_dirs=parse_watch_dirs(os.environ.get("ATTUNE_SENSOR_WATCH_DIRS")),
        timeout_s=_float("ATTUNE_SENSOR_TIMEOUT_SECONDS", 30.0, minimum=1),
    )


def max_chain_depth() -> int:
    """How deep a chain of action-emitted events may go (`ATTUNE_MAX_CHAIN_DEPTH`); deeper ones are suppressed."""
    return int(_float("ATTUNE_MAX_CHAIN_DEPTH", 10, minimum=0))

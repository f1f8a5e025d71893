"""Lazy, cached boto3 clients.

Nothing is built at import time, so moto can start first and warm Lambda
starts reuse connections. `AWS_ENDPOINT_URL` (moto's server or LocalStack)
is honoured by botocore itself. The local cloud (`attune dev`) hands its roles
the platform's real moto key in `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
(its moto refuses any other); only when an endpoint is set and no key at all
is configured (a test's own unauthenticated moto, LocalStack) do we fall back
to the conventional dummy `testing` pair.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.config import settings

_lock = threading.Lock()
_clients: dict[str, Any] = {}
_session: boto3.session.Session | None = None
# What the platform's own clients call (the role template parses their models before it forks roles).
SERVICES = ("sqs", "stepfunctions", "scheduler", "s3", "secretsmanager", "kms", "lambda", "sts")


def _shared_session() -> boto3.session.Session:
    """One boto3 session per process: its botocore loader parses each service's model once, not per client.

    Sessions are not thread-safe, so clients are only made under `_lock`.
    """
    global _session
    if _session is None:
        _session = boto3.session.Session()
    return _session


def preload_models(services: tuple[str, ...] = SERVICES) -> None:
    """Parse the endpoint data and `services`' models into this process's session, resolving no credentials.

    The role template calls it before forking roles, so the roles share the
    parsed models (several MB per process) instead of each parsing its own.
    """
    with _lock:
        core = _shared_session()._session  # botocore's session: where the loader lives
        core.get_component("endpoint_resolver")
        for service in services:
            core.get_service_model(service)


def ensure_local_credentials() -> None:
    """The dummy-key fallback for emulators that accept anything (never overrides a given key).

    Public because the adapters that build their own clients (other timeouts or
    endpoints: lambdas, storage's signer, websocket) need the same fallback.
    """
    if settings().aws_endpoint_url and not os.environ.get("AWS_ACCESS_KEY_ID"):
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


def client(service: str, purpose: str = "") -> Any:
    """A shared, thread-safe boto3 client for `service` in the configured region.

    A `purpose` gets a client (and so a connection pool) of its own: SQS sends
    use one, so that the connections the local moto keeps open for them never
    carry a long poll (moto_patches.KEEP_ALIVE_TARGETS).
    """
    key = f"{service}:{purpose}"
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(key)
        if found is None:
            ensure_local_credentials()
            cfg = settings()
            found = _shared_session().client(
                service,  # type: ignore[call-overload]
                region_name=cfg.aws_region,
                endpoint_url=cfg.aws_endpoint_url,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    max_pool_connections=32,
                    connect_timeout=5,
                    read_timeout=30,
                ),
            )
            _clients[key] = found
    return found


def reset_clients() -> None:
    """Forget cached clients and the session's credentials (tests and tools that switch endpoints or keys)."""
    global _session
    with _lock:
        _clients.clear()
        _session = None

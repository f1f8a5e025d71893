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


def ensure_local_credentials() -> None:
    """The dummy-key fallback for emulators that accept anything (never overrides a given key).

    Public because the adapters that build their own clients (other timeouts or
    endpoints: lambdas, storage's signer, websocket) need the same fallback.
    """
    if settings().aws_endpoint_url and not os.environ.get("AWS_ACCESS_KEY_ID"):
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


def client(service: str) -> Any:
    """A shared, thread-safe boto3 client for `service` in the configured region."""
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(service)
        if found is None:
            ensure_local_credentials()
            cfg = settings()
            found = boto3.session.Session().client(
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
            _clients[service] = found
    return found


def reset_clients() -> None:
    """Forget cached clients (tests that switch endpoints)."""
    with _lock:
        _clients.clear()

"""Secrets Manager reads, cached for the life of the process (a warm Lambda)."""

from __future__ import annotations

import threading

from chalicelib.aws import names
from chalicelib.aws.clients import client

_lock = threading.Lock()
_cache: dict[str, bytes] = {}


def secret_bytes(secret_id: str) -> bytes:
    """The secret's value as bytes; fetched once per process."""
    found = _cache.get(secret_id)
    if found is None:
        with _lock:
            found = _cache.get(secret_id)
            if found is None:
                resp = client("secretsmanager").get_secret_value(SecretId=secret_id)
                raw = resp.get("SecretBinary") or resp["SecretString"].encode("utf-8")
                found = bytes(raw)
                _cache[secret_id] = found
    return found


def jwt_signing_key() -> bytes:
    """The HS256 key that signs and verifies access and refresh tokens."""
    return secret_bytes(names.jwt_secret_id())

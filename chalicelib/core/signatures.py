"""Webhook signatures: `X-Attune-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`.

The comparison is constant-time, and the HMAC is over the raw bytes received,
so a re-serialised JSON body cannot pass.
"""

from __future__ import annotations

import hashlib
import hmac

from chalicelib.core.errors import Unauthorized

HEADER = "x-attune-signature"
PREFIX = "sha256="


def sign(secret: bytes, body: bytes) -> str:
    """The header value a sender computes."""
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> None:
    """Raise a 401 unless `header` is the body's signature under `secret`."""
    if not header:
        raise Unauthorized(f"missing {HEADER} header: this webhook requires an HMAC-SHA256 signature")
    if not header.startswith(PREFIX):
        raise Unauthorized(f"{HEADER} must be 'sha256=<hex digest>'")
    if not hmac.compare_digest(sign(secret, body).encode(), header.strip().encode()):
        raise Unauthorized("webhook signature does not match the body")

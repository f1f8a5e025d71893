"""Webhooks as a service: find the trigger, check the signature, emit the event.

The API view only reads the request and calls `receive`; everything that
touches the database, KMS or a queue happens here. A webhook call names no
tenant, so the trigger is looked up across tenants and the tenant taken from it.
"""

from __future__ import annotations

from typing import Any

from chalicelib import envelope
from chalicelib.config import settings
from chalicelib.core import jsondoc, signatures
from chalicelib.core.errors import NotFound, PayloadTooLarge
from chalicelib.db.pipeline import find_trigger
from chalicelib.db.pool import system_tx
from chalicelib.pipeline.events import emit_event
from chalicelib.pipeline.outbox import publish


def secret_name(trigger_id: int) -> str:
    """What a webhook secret's ciphertext is bound to, so it cannot be moved to another trigger."""
    return f"trigger:{trigger_id}:webhook_secret"


def seal_secret(tenant_id: int, trigger_id: int, secret: str) -> bytes | None:
    """The stored form of a webhook's HMAC secret (None: an empty secret removes it)."""
    return envelope.seal(tenant_id, secret_name(trigger_id), secret.encode()) if secret else None


def _payload(raw: bytes) -> Any:
    if not raw.strip():
        return {}
    return jsondoc.parse(raw, "webhook body")


def receive(trigger_id: int, raw: bytes, signature: str | None) -> int:
    """Store `raw` as an event of the webhook trigger; its id. 404 unknown/disabled, 401 bad signature, 413 too big."""
    limit = settings().max_body_bytes
    if len(raw) > limit:
        raise PayloadTooLarge(f"webhook body is {len(raw)} bytes; the limit is {limit}")
    with system_tx() as cur:
        trigger = find_trigger(cur, trigger_id)
        if trigger is None or trigger["type"] != "webhook" or not trigger["enabled"]:
            raise NotFound(f"webhook {trigger_id} not found")
        tenant = int(trigger["tenant_id"])
        if trigger["webhook_secret"] is not None:
            secret = envelope.open_blob(tenant, secret_name(trigger_id), trigger["webhook_secret"])
            signatures.verify(secret, raw, signature)
        emitted = emit_event(cur, tenant_id=tenant, trigger_id=trigger_id, payload=_payload(raw))
    publish([emitted.message])
    return emitted.event_id

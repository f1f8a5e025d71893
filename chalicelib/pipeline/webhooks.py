"""Webhooks and emits as a service: find the trigger, check the signature or the token, emit the event.

The API views only read the request and call `receive` or `emit`;
everything that touches the database, KMS or a queue happens here. A webhook
call names no tenant, so the trigger is looked up across tenants and the
tenant taken from it.

An action may call a webhook (or `POST /api/v1/events`) with its
execution-scoped token (`attune_action.emit`): the event then continues
that execution's chain (`chalicelib.pipeline.events`), so a loop stops at
the depth limit. A webhook call without such a token starts a new chain; a
bearer token that is not an action token is ignored there (webhooks are
public, and outside systems send headers of their own), but an action token
that does not verify is a 401, never a silent new chain.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jwt

from chalicelib import envelope
from chalicelib.aws.secrets import jwt_signing_key
from chalicelib.config import settings
from chalicelib.core import jsondoc, signatures
from chalicelib.core.auth import ActionClaims, verify_action_token
from chalicelib.core.errors import NotFound, PayloadTooLarge, Unauthorized
from chalicelib.db.automation import TRIGGERS
from chalicelib.db.executions import is_running
from chalicelib.db.pipeline import find_trigger
from chalicelib.db.pool import Cursor, system_tx
from chalicelib.pipeline.events import Chain, Emitted, Suppressed, answer, chain_of, emit_event
from chalicelib.pipeline.outbox import Pending, publish


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


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = (header or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def action_claims(token: str | None) -> ActionClaims | None:
    """The verified claims of an action token; None when `token` is not one (401 when it is one but bad)."""
    if token is None:
        return None
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    if not isinstance(unverified, dict) or unverified.get("typ") != "action":
        return None
    return verify_action_token(jwt_signing_key(), token)


def _chain(cur: Cursor, claims: ActionClaims | None) -> Chain | None:
    """The chain of the running execution whose token came with the call; None without one."""
    if claims is None:
        return None
    chain = chain_of(cur, claims.tenant_id, claims.execution_id)
    if chain is None or not is_running(cur, claims.tenant_id, claims.execution_id):
        raise Unauthorized("action token: the execution is not running")
    return chain


def _sent(result: Emitted | Suppressed) -> list[Pending]:
    return [result.message] if isinstance(result, Emitted) else []


def receive(trigger_id: int, raw: bytes, signature: str | None, bearer: str | None = None) -> int:
    """Store `raw` as an event of the webhook trigger; its id. 404 unknown/disabled, 401 bad signature or bad
    action token, 413 too big.

    `bearer` is the call's `Authorization: Bearer` token: a running action's
    token makes the event continue that execution's chain (suppressed when
    too deep: it still has an id, and `GET /api/v1/events/{id}` says why).
    """
    limit = settings().max_body_bytes
    if len(raw) > limit:
        raise PayloadTooLarge(f"webhook body is {len(raw)} bytes; the limit is {limit}")
    claims = action_claims(bearer)
    with system_tx() as cur:
        trigger = find_trigger(cur, trigger_id)
        if trigger is None or trigger["type"] != "webhook" or not trigger["enabled"]:
            raise NotFound(f"webhook {trigger_id} not found")
        tenant = int(trigger["tenant_id"])
        if trigger["webhook_secret"] is not None:
            secret = envelope.open_blob(tenant, secret_name(trigger_id), trigger["webhook_secret"])
            signatures.verify(secret, raw, signature)
        result = emit_event(cur, tenant_id=tenant, trigger_id=trigger_id, payload=_payload(raw),
                            chain=_chain(cur, claims))
    publish(_sent(result))
    return result.event_id


def emit(
    cur: Cursor, *, tenant_id: int, trigger_id: int, payload: Any, execution_id: int | None,
    after_commit: list[Callable[[], None]],
) -> dict[str, Any]:
    """An event of one of the tenant's enabled triggers, by a user or a running action (`execution_id`).

    Returns the answer; its message is published by `after_commit` (the
    caller runs it once its transaction commits). An action's event
    continues its execution's chain.
    """
    trigger = TRIGGERS.get(cur, tenant_id, trigger_id)
    if trigger is None or not trigger["enabled"]:
        raise NotFound(f"trigger {trigger_id} not found or disabled")
    chain = None
    if execution_id is not None:
        chain = chain_of(cur, tenant_id, execution_id)
        if chain is None:
            raise NotFound(f"execution {execution_id} not found")
    result = emit_event(cur, tenant_id=tenant_id, trigger_id=trigger_id, payload=payload, chain=chain)
    after_commit.append(functools.partial(publish, _sent(result)))
    return answer(result)

"""Webhooks: anyone may POST an event to a webhook trigger's URL; a secret makes it signed-only.

The answer is 202 as soon as the event and its outbox message are committed;
rule evaluation happens behind the `events` queue.
"""

from __future__ import annotations

import json
from typing import Any

from chalice import Blueprint, Response

from chalicelib import envelope
from chalicelib.api.context import PublicCall, public
from chalicelib.api.params import path_id
from chalicelib.api.triggers import secret_name
from chalicelib.config import settings
from chalicelib.core import signatures
from chalicelib.core.errors import BadRequest, NotFound, PayloadTooLarge
from chalicelib.db.pipeline import find_trigger, insert_event
from chalicelib.db.pool import system_tx
from chalicelib.models.messages import EventMessage
from chalicelib.pipeline.outbox import enqueue, publish

bp = Blueprint(__name__)


def _payload(raw: bytes) -> Any:
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"webhook body must be JSON: {exc}") from exc


@bp.route("/api/v1/webhooks/{trigger_id}", methods=["POST"])
@public(status=202)
def receive(call: PublicCall, trigger_id: str) -> Response:
    """Store the body as an event of the trigger; 202 with its id."""
    body = call.request.raw_body or b""
    raw = body.encode() if isinstance(body, str) else body
    limit = settings().max_body_bytes
    if len(raw) > limit:
        raise PayloadTooLarge(f"webhook body is {len(raw)} bytes; the limit is {limit}")
    tid = path_id(trigger_id, "webhook")
    with system_tx() as cur:
        trigger = find_trigger(cur, tid)
        if trigger is None or trigger["type"] != "webhook" or not trigger["enabled"]:
            raise NotFound(f"webhook {trigger_id} not found")
        tenant = int(trigger["tenant_id"])
        if trigger["webhook_secret"] is not None:
            secret = envelope.open_blob(tenant, secret_name(tid), trigger["webhook_secret"])
            signatures.verify(secret, raw, call.request.headers.get(signatures.HEADER))
        event = insert_event(cur, tenant, tid, _payload(raw))
        pending = enqueue(cur, "events", EventMessage(tenant_id=tenant, event_id=event["id"]).model_dump())
    publish([pending])
    return Response(body={"event_id": event["id"]}, status_code=202)

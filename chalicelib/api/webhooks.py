"""Webhooks: anyone may POST an event to a webhook trigger's URL; a secret makes it signed-only.

The answer is 202 as soon as the event and its outbox message are committed;
rule evaluation happens behind the `events` queue.
"""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.context import PublicCall, public
from chalicelib.api.params import path_id
from chalicelib.core import signatures
from chalicelib.pipeline import webhooks

bp = Blueprint(__name__)


@bp.route("/api/v1/webhooks/{trigger_id}", methods=["POST"])
@public(status=202)
def receive(call: PublicCall, trigger_id: str) -> Response:
    """Store the body as an event of the trigger; 202 with its id."""
    body = call.request.raw_body or b""
    raw = body.encode() if isinstance(body, str) else body
    event_id = webhooks.receive(path_id(trigger_id, "webhook"), raw, call.request.headers.get(signatures.HEADER))
    return Response(body={"event_id": event_id}, status_code=202)

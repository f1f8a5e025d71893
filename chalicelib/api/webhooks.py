"""Webhooks: anyone may POST an event to a webhook trigger's URL; a secret makes it signed-only.

The answer is 202 as soon as the event and its outbox message are committed;
rule evaluation happens behind the `events` queue. Each trigger has its own
rate-limit bucket (429 over it), so a flood of one webhook cannot starve
another's, and the bucket is taken before the trigger is even looked up.
"""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.context import PublicCall, public
from chalicelib.api.params import path_id
from chalicelib.config import settings
from chalicelib.core import signatures
from chalicelib.db import ratelimits
from chalicelib.models.responses import WebhookAccepted
from chalicelib.pipeline import webhooks

bp = Blueprint(__name__)


def webhook_bucket(trigger_id: int) -> ratelimits.Bucket:
    """The trigger's own bucket: its limit is the trigger's, whoever calls it."""
    limit = settings().limits.webhook
    return ratelimits.Bucket(f"webhook:{trigger_id}", limit,
                             f"webhook rate limit of {limit.per_s:g} events/s (burst {limit.burst}) exceeded")


@bp.route("/api/v1/webhooks/{trigger_id}", methods=["POST"])
@public(status=202, response=WebhookAccepted, errors=(401, 429),
        raw_body={"description": "Any JSON document: the event's payload (empty: `{}`)."})
def receive(call: PublicCall, trigger_id: str) -> Response:
    """Store the body as an event of the trigger; 202 with its id."""
    body = call.request.raw_body or b""
    raw = body.encode() if isinstance(body, str) else body
    tid = path_id(trigger_id, "webhook")
    ratelimits.admit([webhook_bucket(tid)])
    event_id = webhooks.receive(tid, raw, call.request.headers.get(signatures.HEADER),
                                bearer=webhooks.bearer_token(call.request.headers.get("authorization")))
    return Response(body={"event_id": event_id}, status_code=202)

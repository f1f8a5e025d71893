"""What a WebSocket client receives: `{"event", "entity_type", "entity_id", "data", "timestamp"}` (pure).

ARCHITECTURE §4 fixes the shape; the seed's T3.14 adds `data.execution_id`
for execution events, so both `id` and `execution_id` name the execution;
timestamps read exactly as the REST API writes them. API Gateway refuses a
`post_to_connection` over 128 KiB, so an oversized notification (a huge
inquiry schema) goes out with its identifying fields only and
`"truncated": true`, rather than not at all.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from chalicelib.models.messages import NotificationMessage

MAX_PAYLOAD_BYTES = 128 * 1024  # API Gateway WebSocket message limit
# What a truncated notification keeps of its data: enough to fetch the rest over the API.
KEPT_WHEN_TRUNCATED = ("id", "execution_id", "status", "action_ref", "rule_id", "rule_ref", "count", "event_id")
# Timestamps of the objects notified, rendered as the API renders them (ISO-8601 UTC, milliseconds).
TIMESTAMP_FIELDS = frozenset({"created", "updated", "started", "finished", "timeout_at", "responded_at"})


def contract_time(value: Any) -> Any:
    """`2026-01-27T10:30:00.123Z` for a timestamp (a datetime or an ISO string); anything else as it is."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def client_document(message: NotificationMessage) -> dict[str, Any]:
    """The notification as the client sees it (no tenant, no outbox id)."""
    data = {k: contract_time(v) if k in TIMESTAMP_FIELDS else v for k, v in message.data.items()}
    if message.entity_type == "execution":
        data.setdefault("execution_id", message.entity_id)
    return {
        "event": message.event,
        "entity_type": message.entity_type,
        "entity_id": message.entity_id,
        "data": data,
        "timestamp": message.timestamp,
    }


def encode(message: NotificationMessage, limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """The UTF-8 JSON frame for `message`, cut down to its identifying fields when over `limit`."""
    doc = client_document(message)
    raw = _encode(doc)
    if len(raw) <= limit:
        return raw
    kept = {k: doc["data"][k] for k in KEPT_WHEN_TRUNCATED if k in doc["data"]}
    return _encode({**doc, "data": {**kept, "truncated": True}})

"""What a WebSocket client asked to hear: the `subscribe` message, and matching against it (pure).

A connection starts with the empty subscription, which hears every event of
its tenant; `{"action": "subscribe", "events": [...], "entity_id"?}`
replaces it. An event name is one of `EVENTS`, a family (`execution.*`) or
`*`. Tenancy is never part of a subscription: the notifier only ever looks
at the connections of the notification's own tenant.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator

from chalicelib.core.errors import BadRequest
from chalicelib.models.base import Contract

EVENTS = ("execution.status_changed", "inquiry.created", "inquiry.responded", "rule.triggered")
FAMILIES = tuple(sorted({name.split(".", 1)[0] + ".*" for name in EVENTS}))
PATTERNS = frozenset({*EVENTS, *FAMILIES, "*"})
MAX_EVENTS = 16
MAX_MESSAGE_BYTES = 32 * 1024  # one API Gateway WebSocket frame; a subscribe is a few dozen bytes


class Subscribe(Contract):
    """`{"action": "subscribe", "events"?: [...], "entity_id"?: N}`: narrow what this connection hears."""

    action: Literal["subscribe"]
    events: Annotated[list[str], Field(min_length=1, max_length=MAX_EVENTS)] | None = None
    entity_id: Annotated[int, Field(ge=1)] | None = None

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str] | None) -> list[str] | None:
        unknown = [e for e in events or [] if e not in PATTERNS]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r}; expected one of {', '.join(sorted(PATTERNS))}")
        return sorted(set(events)) if events is not None else None

    def stored(self) -> dict[str, Any]:
        """The `subscription` column: only what narrows (`{}` hears everything)."""
        return self.model_dump(exclude={"action"}, exclude_none=True)


def _describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "message"
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"


def parse_message(body: str | bytes | None) -> Subscribe:
    """A client's message as a `subscribe` request; a clear 400 for anything else."""
    raw = body.encode() if isinstance(body, str) else body or b""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise BadRequest(f"message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest('message must be a JSON object such as {"action": "subscribe", "events": [...]}') from exc
    if not isinstance(doc, dict):
        raise BadRequest(f"message must be a JSON object, got {type(doc).__name__}")
    if doc.get("action") != "subscribe":
        raise BadRequest(f"unknown action {doc.get('action')!r}; the only action is 'subscribe'")
    try:
        return Subscribe.model_validate(doc)
    except ValidationError as exc:
        raise BadRequest(f"invalid subscribe: {_describe(exc)}") from exc


def _hears(pattern: str, event: str) -> bool:
    if pattern in ("*", event):
        return True
    return pattern.endswith(".*") and event.startswith(pattern[:-1])


def matches(subscription: Mapping[str, Any] | None, event: str, entity_id: int) -> bool:
    """Whether a connection with this stored subscription hears `event` about `entity_id`."""
    sub = subscription or {}
    events = sub.get("events")
    if events is not None and not any(_hears(str(p), event) for p in events):
        return False
    wanted = sub.get("entity_id")
    return wanted is None or int(wanted) == entity_id

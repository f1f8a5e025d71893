"""The one message of the `timer-fires` queue: a claimed fire and the exact instant it is due."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from chalicelib.models.base import Contract

Id = Annotated[int, Field(ge=1)]


class FireMessage(Contract):
    """Sent ahead of time (SQS delays are whole seconds); the handler waits out the rest until `due_at`."""

    kind: Literal["timer_fire"] = "timer_fire"
    tenant_id: Id
    trigger_id: Id
    fire_id: Id
    due_at: datetime

"""Bodies of the trigger and rule endpoints."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue

from chalicelib.models.base import Contract

Ref = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
Description = Annotated[str, Field(max_length=4096)]
TriggerType = Literal["webhook", "interval", "date", "cron", "sensor"]


WebhookSecret = Annotated[str, Field(min_length=16, max_length=512)]


class NewTrigger(Contract):
    """`POST /api/v1/triggers`; `secret` (webhooks only) makes HMAC signatures mandatory."""

    type: TriggerType
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    ref: Ref | None = None
    description: Description | None = None
    enabled: bool = True
    secret: WebhookSecret | None = None


class TriggerPatch(Contract):
    """`PATCH /api/v1/triggers/{id}`: only the fields given change."""

    parameters: dict[str, JsonValue] | None = None
    description: Description | None = None
    enabled: bool | None = None
    secret: WebhookSecret | Literal[""] | None = None


Template = Annotated[str, Field(max_length=16384)]


class NewRule(Contract):
    """`POST /api/v1/rules`."""

    trigger_id: Annotated[int, Field(ge=1, le=2**63 - 1)]
    action_ref: Annotated[str, Field(min_length=3, max_length=200, pattern=r"^[a-z0-9][a-z0-9_-]*\.[A-Za-z0-9_.-]+$")]
    ref: Ref | None = None
    description: Description | None = None
    criteria: Template | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    notify_on_trigger: bool = False


class RulePatch(Contract):
    """`PATCH /api/v1/rules/{id}`: only the fields given change."""

    action_ref: (
        Annotated[str, Field(min_length=3, max_length=200, pattern=r"^[a-z0-9][a-z0-9_-]*\.[A-Za-z0-9_.-]+$")] | None
    ) = None
    description: Description | None = None
    criteria: Template | None = None
    parameters: dict[str, Any] | None = None
    enabled: bool | None = None
    notify_on_trigger: bool | None = None

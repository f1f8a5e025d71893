"""What sensors and chained actions bring in: a pack's `sensors/<name>.yaml`, the sensor patch, emit bodies.

The sensor manifest is ours plus StackStorm's descriptive fields, so an st2
polling sensor's YAML loads (`trigger_types` is accepted and unused: each
sensor here has one trigger of its own, created with it). The messages the
sensor function receives (a schedule's input, a delayed poll) are contracts
too, so a malformed one is refused rather than half-read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue

from chalicelib.models.base import Contract
from chalicelib.models.packs import Description, RelPath

SENSOR_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
CLASS_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
MAX_POLL_INTERVAL_S = 24 * 3600
# A poll runs within one invocation of the sensor function (Lambda's limit is 900 s).
MAX_POLL_TIMEOUT_S = 600

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


class SensorFields(Contract):
    """`sensors/<name>.yaml`: `name` defaults to the file name; `pack`, when given, must be the pack's ref."""

    description: Description | None = None
    entry_point: RelPath
    class_name: Annotated[str, Field(pattern=CLASS_NAME_PATTERN)]
    poll_interval: Annotated[int, Field(ge=1, le=MAX_POLL_INTERVAL_S)] = 60
    timeout: Annotated[int, Field(ge=1, le=MAX_POLL_TIMEOUT_S)] | None = None
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    enabled: bool = True
    trigger_types: list[Any] | None = None  # StackStorm's; unused here


class SensorPatch(Contract):
    """`PATCH /api/v1/sensors/{id}`: turn polling on or off."""

    enabled: bool


class EmitEvent(Contract):
    """`POST /api/v1/events`: an event of one of the tenant's triggers, by a user or a running action."""

    trigger_id: Id
    payload: JsonValue = Field(default_factory=dict)


class SensorTick(Contract):
    """A sensor's schedule fired (its target input): what it was created with, to notice drift and orphans."""

    kind: Literal["sensor_tick"] = "sensor_tick"
    tenant_id: Id
    sensor_id: Id
    interval: Annotated[int, Field(ge=1)]
    created: datetime
    scheduled_time: datetime | None = None


class SensorPoll(Contract):
    """One delayed poll of a sub-minute sensor on AWS (the `sensor-polls` queue), due at `due_at`."""

    kind: Literal["sensor_poll"] = "sensor_poll"
    tenant_id: Id
    sensor_id: Id
    due_at: datetime

"""Registering a pack's sensors: each gets its trigger (type `sensor`) and its own schedule.

Called by `chalicelib.packs.install` in the registering transaction, after
the pack row and its upload. A schedule is put in that transaction too, as
the pack's files are uploaded in it: if the transaction then fails, the
schedule is an orphan whose first invocations find no sensor, and the sensor
function deletes it once it is clearly one (`service.ORPHAN_AFTER_S`).
Schedules of removed sensors are left to that same rule rather than deleted
here, because a delete cannot be rolled back and a sensor without its
schedule would never poll again. Enabling and disabling change the schedule
after the change commits (`set_enabled`), so an invocation never sees the
old flag.
"""

from __future__ import annotations

from typing import Any

from chalicelib.aws import schedules
from chalicelib.config import settings
from chalicelib.core.errors import NotFound, ValidationFailed
from chalicelib.core.pack_archive import Files
from chalicelib.core.packs import SensorDef, parse_sensors
from chalicelib.core.timers import validate_trigger_parameters
from chalicelib.db import audit
from chalicelib.db import sensors as db
from chalicelib.db.automation import insert_trigger, update_trigger
from chalicelib.db.pool import Cursor, system_tx
from chalicelib.models.sensors import SensorTick
from chalicelib.sensors.timing import schedule_expression

FUNCTION = "sensors"  # SensorsFunction: `<stack>-sensors`
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"


def second_rates() -> bool:
    """Whether the local scheduler fires our schedules (an emulator endpoint): it takes `rate(N seconds)`."""
    return settings().aws_endpoint_url is not None


def schedule_name(sensor_id: int) -> str:
    """A sensor's schedule, in the stack's group."""
    return f"{settings().stack_name}-sensor-{sensor_id}"


def put_schedule(row: dict[str, Any]) -> None:
    """Create or replace the schedule of a sensor row (its interval and enabled flag)."""
    tick = SensorTick(tenant_id=row["tenant_id"], sensor_id=row["id"], interval=row["poll_interval"],
                      created=row["created"])
    payload = {**tick.model_dump(mode="json", exclude={"scheduled_time"}), "scheduled_time": SCHEDULED_TIME}
    schedules.put(
        schedule_name(int(row["id"])),
        expression=schedule_expression(int(row["poll_interval"]), second_rates=second_rates()),
        function=FUNCTION, payload=payload, enabled=bool(row["enabled"]),
        description=f"polls sensor {row['ref']} every {row['poll_interval']}s",
    )


def _definition(sensor: SensorDef) -> dict[str, Any]:
    f = sensor.fields
    return {"description": f.description, "entry_point": sensor.path, "class_name": f.class_name,
            "poll_interval": f.poll_interval, "timeout": f.timeout}


def sync_pack(cur: Cursor, tenant_id: int | None, pack: dict[str, Any], files: Files, *, actor: str) -> dict[str, Any]:
    """Make the pack's sensors those its `sensors/*.yaml` define: added, updated (state kept), removed."""
    found = parse_sensors(pack["ref"], files)
    if tenant_id is None:
        if found:
            raise ValidationFailed(f"{found[0].source}: sensors belong to tenant packs, not to system packs")
        return {}
    existing = {row["name"]: row for row in db.of_pack(cur, tenant_id, pack["id"])}
    changes: dict[str, list[str]] = {"sensors_added": [], "sensors_updated": [], "sensors_removed": []}
    for sensor in found:
        params = validate_trigger_parameters("sensor", dict(sensor.fields.parameters))
        row = existing.pop(sensor.name, None)
        if row is None:
            trigger = insert_trigger(cur, tenant_id, {
                "ref": sensor.ref, "type": "sensor", "description": f"events of sensor {sensor.ref}",
                "parameters": params, "enabled": True,
            })
            row = db.insert(cur, tenant_id, {
                **_definition(sensor), "pack_id": pack["id"], "trigger_id": trigger["id"], "ref": sensor.ref,
                "name": sensor.name, "enabled": sensor.fields.enabled,
            })
            changes["sensors_added"].append(sensor.ref)
        else:
            row = db.update_definition(cur, tenant_id, row["id"], _definition(sensor))
            update_trigger(cur, tenant_id, row["trigger_id"], {"parameters": params})
            changes["sensors_updated"].append(sensor.ref)
        put_schedule(row)
    for gone in existing.values():
        db.delete(cur, tenant_id, gone["id"])
        changes["sensors_removed"].append(gone["ref"])
    if any(changes.values()):
        audit.record(cur, tenant_id=tenant_id, actor=actor, action="pack.sensors_synced", entity_type="pack",
                     entity_id=pack["id"], detail=changes)
    return changes


def restore_schedules() -> int:
    """Re-create the schedules of sensors that have none; how many were made.

    moto keeps schedules in memory, so a restarted local cloud has lost every
    sensor's (the template's own are provisioned again); the local scheduler
    role calls this as it starts. Harmless where nothing was lost.
    """
    with system_tx() as cur:
        rows = db.all_for_schedules(cur)
    made = 0
    for row in rows:
        if schedules.get(schedule_name(int(row["id"]))) is None:
            put_schedule(row)
            made += 1
    return made


def set_enabled(cur: Cursor, tenant_id: int, sensor_id: int, enabled: bool, *, actor: str) -> dict[str, Any]:
    """Turn a sensor's polling on or off; its schedule follows with `put_schedule` after the commit."""
    row = db.set_enabled(cur, tenant_id, sensor_id, enabled)
    if row is None:
        raise NotFound(f"sensor {sensor_id} not found")
    audit.record(cur, tenant_id=tenant_id, actor=actor, action="sensor.enabled" if enabled else "sensor.disabled",
                 entity_type="sensor", entity_id=sensor_id)
    return row

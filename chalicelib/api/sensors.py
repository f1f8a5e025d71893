"""Sensors: read what each sensor's polls did, and turn polling on or off.

Sensors are created, changed and removed with their pack (`sensors/*.yaml`);
here a user sees their trigger, last poll, last error and events emitted,
and enables or disables one (`PATCH {"enabled": bool}`).
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.context import Call, endpoint
from chalicelib.api.params import PAGE, enabled_filter, id_filter, page, path_id
from chalicelib.api.serialize import listing, pick
from chalicelib.core.auth import Permission
from chalicelib.core.errors import NotFound
from chalicelib.db.sensors import SENSOR_FIELDS, SENSORS, SENSORS_WITH_STATE
from chalicelib.models.responses import Sensor, SensorDetail, SensorList
from chalicelib.models.sensors import SensorPatch
from chalicelib.sensors import registry

bp = Blueprint(__name__)
ENABLED = enabled_filter("sensors")
TRIGGER_ID = id_filter("trigger_id", "the sensor of this trigger")
PACK_ID = id_filter("pack_id", "the sensors of this pack")


@bp.route("/api/v1/sensors", methods=["GET"])
@endpoint(Permission.READ, query=(*PAGE, ENABLED, TRIGGER_ID, PACK_ID), response=SensorList)
def list_sensors(call: Call) -> dict[str, Any]:
    """The tenant's sensors, newest first; filters `enabled`, `trigger_id`, `pack_id`."""
    window = page(call)
    rows, total = SENSORS.list(
        call.cur, call.principal.tenant_id, limit=window.limit, offset=window.offset,
        where={"enabled": ENABLED.read(call), "trigger_id": TRIGGER_ID.read(call), "pack_id": PACK_ID.read(call)},
    )
    return listing([pick(r, SENSOR_FIELDS) for r in rows], total, window.limit, window.offset)


@bp.route("/api/v1/sensors/{sensor_id}", methods=["GET"])
@endpoint(Permission.READ, response=SensorDetail)
def get_sensor(call: Call, sensor_id: str) -> dict[str, Any]:
    """One sensor, with the state its last successful poll returned."""
    row = SENSORS_WITH_STATE.get(call.cur, call.principal.tenant_id, path_id(sensor_id, "sensor"))
    if row is None:
        raise NotFound(f"sensor {sensor_id} not found")
    return pick(row, (*SENSOR_FIELDS, "state"))


@bp.route("/api/v1/sensors/{sensor_id}", methods=["PATCH"])
@endpoint(Permission.WRITE, body=SensorPatch, response=Sensor)
def patch_sensor(call: Call, sensor_id: str) -> dict[str, Any]:
    """Enable or disable polling; the sensor's schedule follows once the change is committed."""
    body: SensorPatch = call.body
    row = registry.set_enabled(call.cur, call.principal.tenant_id, path_id(sensor_id, "sensor"), body.enabled,
                               actor=call.principal.actor)
    call.after_commit.append(lambda: registry.put_schedule(row))
    return pick(row, SENSOR_FIELDS)

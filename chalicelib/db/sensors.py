"""Sensor rows: a pack's polling sensors, their state between polls, the lease that makes one poll run at a time.

The sensor function works in system transactions, so every statement here
filters by tenant itself. A poll is claimed (a lease of the poll's timeout
plus slack) before its process starts and recorded with a compare-and-set
on that lease, so overlapping invocations of one sensor's schedule, or a
late result after the lease ran out, never poll twice or overwrite a newer
state.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.db.crud import Table
from chalicelib.db.pool import Cursor

SENSOR_FIELDS = (
    "id", "ref", "name", "description", "pack_id", "trigger_id", "entry_point", "class_name", "poll_interval",
    "timeout", "enabled", "last_poll_at", "last_poll_status", "last_error", "last_error_at", "polls", "failures",
    "events_emitted", "created", "updated",
)
SENSORS = Table("sensor", SENSOR_FIELDS, frozenset({"enabled", "trigger_id", "pack_id"}))
# One sensor with its state (lists leave it out: it may be large).
SENSORS_WITH_STATE = Table("sensor", (*SENSOR_FIELDS, "state"))

_COLUMNS = """
id, tenant_id, ref, name, description, pack_id, trigger_id, entry_point, class_name, poll_interval, timeout,
enabled, last_poll_at, last_poll_status, last_error, last_error_at, polls, failures, events_emitted, created, updated
"""
OF_PACK = "SELECT" + _COLUMNS + "FROM attune.sensor WHERE tenant_id = %(tenant_id)s AND pack_id = %(pack_id)s"
INSERT_SENSOR = """
INSERT INTO attune.sensor (tenant_id, pack_id, trigger_id, ref, name, description, entry_point, class_name,
                           poll_interval, timeout, enabled)
VALUES (%(tenant_id)s, %(pack_id)s, %(trigger_id)s, %(ref)s, %(name)s, %(description)s, %(entry_point)s,
        %(class_name)s, %(poll_interval)s, %(timeout)s, %(enabled)s)
RETURNING""" + _COLUMNS
# A reload replaces the definition; the state, the counters and the user's enabled flag stay.
UPDATE_DEFINITION = """
UPDATE attune.sensor SET description = %(description)s, entry_point = %(entry_point)s,
       class_name = %(class_name)s, poll_interval = %(poll_interval)s, timeout = %(timeout)s
WHERE tenant_id = %(tenant_id)s AND id = %(id)s
RETURNING""" + _COLUMNS
DELETE_SENSOR = "DELETE FROM attune.sensor WHERE tenant_id = %(tenant_id)s AND id = %(id)s"
SET_ENABLED = """
UPDATE attune.sensor SET enabled = %(enabled)s WHERE tenant_id = %(tenant_id)s AND id = %(id)s
RETURNING""" + _COLUMNS
# Every sensor, for re-creating schedules an emulator lost (a restarted local cloud).
ALL_FOR_SCHEDULES = "SELECT id, tenant_id, ref, poll_interval, enabled, created FROM attune.sensor ORDER BY id"
# What a schedule's invocation checks before anything runs: is the sensor there, enabled, on this interval?
LOAD_FOR_TICK = """
SELECT s.id, s.tenant_id, s.ref, s.poll_interval, s.enabled, t.enabled AS trigger_enabled, s.created
FROM attune.sensor s JOIN attune.trigger t ON t.id = s.trigger_id
WHERE s.tenant_id = %(tenant_id)s AND s.id = %(id)s
"""
# The lease: only an enabled sensor of an enabled trigger, only when no poll holds it; it lasts
# the poll's timeout plus slack, so a poller that died frees the sensor soon after.
CLAIM = """
UPDATE attune.sensor s
SET lease_token = gen_random_uuid(),
    lease_until = clock_timestamp() + make_interval(secs => coalesce(s.timeout, %(default_timeout_s)s) + %(slack_s)s)
FROM attune.trigger t, attune.pack p, attune.tenant tn
WHERE s.tenant_id = %(tenant_id)s AND s.id = %(id)s AND s.enabled
  AND t.id = s.trigger_id AND t.enabled AND p.id = s.pack_id AND tn.id = s.tenant_id
  AND (s.lease_until IS NULL OR s.lease_until < clock_timestamp())
RETURNING s.id, s.tenant_id, s.ref, s.trigger_id, s.entry_point, s.class_name, s.timeout, s.state,
          s.lease_token, t.parameters, p.storage_key, tn.name AS tenant_name
"""
RECORD_SUCCESS = """
UPDATE attune.sensor
SET state = %(state)s, lease_token = NULL, lease_until = NULL, last_poll_at = %(polled_at)s,
    last_poll_status = 'succeeded', polls = polls + 1, events_emitted = events_emitted + %(emitted)s
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND lease_token = %(token)s
"""
# A failed poll keeps the state it was given: the next poll starts from the same place.
RECORD_FAILURE = """
UPDATE attune.sensor
SET lease_token = NULL, lease_until = NULL, last_poll_at = %(polled_at)s, last_poll_status = %(status)s,
    polls = polls + 1, failures = failures + 1, last_error = %(error)s, last_error_at = clock_timestamp()
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND lease_token = %(token)s
"""


def of_pack(cur: Cursor, tenant_id: int, pack_id: int) -> list[dict[str, Any]]:
    """The pack's sensors."""
    cur.execute(OF_PACK, {"tenant_id": tenant_id, "pack_id": pack_id})
    return cur.fetchall()


def insert(cur: Cursor, tenant_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """A new sensor (its trigger exists already)."""
    cur.execute(INSERT_SENSOR, {**values, "tenant_id": tenant_id})
    row = cur.fetchone()
    assert row is not None
    return row


def update_definition(cur: Cursor, tenant_id: int, sensor_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """Replace what a reload may change."""
    cur.execute(UPDATE_DEFINITION, {**values, "tenant_id": tenant_id, "id": sensor_id})
    row = cur.fetchone()
    assert row is not None
    return row


def delete(cur: Cursor, tenant_id: int, sensor_id: int) -> None:
    """Delete a sensor; its trigger goes with it (a database trigger)."""
    cur.execute(DELETE_SENSOR, {"tenant_id": tenant_id, "id": sensor_id})


def set_enabled(cur: Cursor, tenant_id: int, sensor_id: int, enabled: bool) -> dict[str, Any] | None:
    """Turn polling on or off; None when the tenant has no such sensor."""
    cur.execute(SET_ENABLED, {"tenant_id": tenant_id, "id": sensor_id, "enabled": enabled})
    return cur.fetchone()


def all_for_schedules(cur: Cursor) -> list[dict[str, Any]]:
    """Every tenant's sensors, with what their schedules are made from (system transactions only)."""
    cur.execute(ALL_FOR_SCHEDULES)
    return cur.fetchall()


def load_for_tick(cur: Cursor, tenant_id: int, sensor_id: int) -> dict[str, Any] | None:
    """Interval, liveness and creation of a sensor; None when it is gone."""
    cur.execute(LOAD_FOR_TICK, {"tenant_id": tenant_id, "id": sensor_id})
    return cur.fetchone()


def claim(
    cur: Cursor, tenant_id: int, sensor_id: int, *, default_timeout_s: float, slack_s: float
) -> dict[str, Any] | None:
    """Take the poll lease; the sensor with what a poll needs, or None (disabled, gone, or a poll runs)."""
    cur.execute(CLAIM, {"tenant_id": tenant_id, "id": sensor_id, "default_timeout_s": default_timeout_s,
                        "slack_s": slack_s})
    return cur.fetchone()


def record_success(
    cur: Cursor, lease: dict[str, Any], *, state: Any, polled_at: Any, emitted: int
) -> bool:
    """Keep the new state and count the events; False when the lease was lost (nothing recorded)."""
    cur.execute(RECORD_SUCCESS, {
        "tenant_id": lease["tenant_id"], "id": lease["id"], "token": lease["lease_token"], "state": Jsonb(state),
        "polled_at": polled_at, "emitted": emitted,
    })
    return cur.rowcount == 1


def record_failure(cur: Cursor, lease: dict[str, Any], *, status: str, error: str, polled_at: Any) -> bool:
    """Record a poll that raised or timed out; False when the lease was lost."""
    cur.execute(RECORD_FAILURE, {
        "tenant_id": lease["tenant_id"], "id": lease["id"], "token": lease["lease_token"], "status": status,
        "error": error, "polled_at": polled_at,
    })
    return cur.rowcount == 1

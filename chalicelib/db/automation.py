"""Triggers, rules, events and enforcements."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.db.crud import Table
from chalicelib.db.pool import Cursor

TRIGGER_FIELDS = ("id", "ref", "type", "description", "parameters", "enabled", "state", "created", "updated")
RULE_FIELDS = (
    "id",
    "ref",
    "description",
    "trigger_id",
    "action_ref",
    "criteria",
    "parameters",
    "enabled",
    "notify_on_trigger",
    "created",
    "updated",
)
EVENT_FIELDS = ("id", "trigger_id", "payload", "created")
ENFORCEMENT_FIELDS = ("id", "rule_id", "event_id", "trigger_id", "status", "error", "created", "updated")

# webhook_secret is selected only to show whether one is set; it is never rendered.
TRIGGERS = Table("trigger", (*TRIGGER_FIELDS, "webhook_secret"), frozenset({"type", "enabled"}))
RULES = Table("rule", RULE_FIELDS, frozenset({"trigger_id", "action_ref", "enabled"}))
# `events?rule_id=`: the events that produced an enforcement of that rule
# (matched by it), found through enforcement's UNIQUE (rule_id, event_id) index.
EVENT_ENFORCED_BY_RULE = """
EXISTS (SELECT 1 FROM attune.enforcement enf
        WHERE enf.rule_id = %(f_rule_id)s AND enf.event_id = attune.event.id
          AND enf.tenant_id = attune.event.tenant_id)
"""
EVENTS = Table("event", EVENT_FIELDS, frozenset({"trigger_id", "rule_id"}),
               filter_conditions={"rule_id": EVENT_ENFORCED_BY_RULE})
ENFORCEMENTS = Table("enforcement", ENFORCEMENT_FIELDS, frozenset({"trigger_id", "rule_id", "event_id", "status"}))

INSERT_TRIGGER = """
INSERT INTO attune.trigger (tenant_id, ref, type, description, parameters, enabled)
VALUES (%(tenant_id)s, %(ref)s, %(type)s, %(description)s, %(parameters)s, %(enabled)s)
RETURNING id, ref, type, description, parameters, enabled, state, created, updated, webhook_secret
"""
SET_TRIGGER_HMAC = """
UPDATE attune.trigger SET webhook_secret = %(secret)s WHERE tenant_id = %(tenant_id)s AND id = %(id)s
"""
UPDATE_TRIGGER = """
UPDATE attune.trigger SET
    parameters = coalesce(%(parameters)s, parameters),
    description = coalesce(%(description)s, description),
    enabled = coalesce(%(enabled)s, enabled)
WHERE tenant_id = %(tenant_id)s AND id = %(id)s
RETURNING id, ref, type, description, parameters, enabled, state, created, updated, webhook_secret
"""
INSERT_RULE = """
INSERT INTO attune.rule (tenant_id, ref, description, trigger_id, action_ref, criteria, parameters,
                         enabled, notify_on_trigger)
VALUES (%(tenant_id)s, %(ref)s, %(description)s, %(trigger_id)s, %(action_ref)s, %(criteria)s,
        %(parameters)s, %(enabled)s, %(notify_on_trigger)s)
RETURNING id, ref, description, trigger_id, action_ref, criteria, parameters, enabled,
          notify_on_trigger, created, updated
"""
UPDATE_RULE = """
UPDATE attune.rule SET
    action_ref = coalesce(%(action_ref)s, action_ref),
    description = coalesce(%(description)s, description),
    criteria = CASE WHEN %(set_criteria)s THEN %(criteria)s ELSE criteria END,
    parameters = coalesce(%(parameters)s, parameters),
    enabled = coalesce(%(enabled)s, enabled),
    notify_on_trigger = coalesce(%(notify_on_trigger)s, notify_on_trigger)
WHERE tenant_id = %(tenant_id)s AND id = %(id)s
RETURNING id, ref, description, trigger_id, action_ref, criteria, parameters, enabled,
          notify_on_trigger, created, updated
"""
ACTION_EXISTS = """
SELECT 1 FROM attune.action
WHERE ref = %(ref)s AND (tenant_id = %(tenant_id)s OR tenant_id IS NULL)
"""


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def insert_trigger(cur: Cursor, tenant_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """Store a validated trigger."""
    cur.execute(INSERT_TRIGGER, {**values, "tenant_id": tenant_id, "parameters": Jsonb(values["parameters"])})
    row = cur.fetchone()
    assert row is not None
    return row


def set_trigger_secret(cur: Cursor, tenant_id: int, trigger_id: int, sealed: bytes | None) -> None:
    """Store (or clear) a webhook's sealed HMAC secret."""
    cur.execute(SET_TRIGGER_HMAC, {"tenant_id": tenant_id, "id": trigger_id, "secret": sealed})


def update_trigger(cur: Cursor, tenant_id: int, trigger_id: int, values: dict[str, Any]) -> dict[str, Any] | None:
    """Apply a patch; None when the trigger is not the tenant's."""
    cur.execute(
        UPDATE_TRIGGER,
        {
            "tenant_id": tenant_id,
            "id": trigger_id,
            "parameters": _json(values.get("parameters")),
            "description": values.get("description"),
            "enabled": values.get("enabled"),
        },
    )
    return cur.fetchone()


def action_exists(cur: Cursor, tenant_id: int, ref: str) -> bool:
    """Whether the tenant can run `ref` (its own action or a system one)."""
    cur.execute(ACTION_EXISTS, {"ref": ref, "tenant_id": tenant_id})
    return cur.fetchone() is not None


def insert_rule(cur: Cursor, tenant_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """Store a validated rule."""
    cur.execute(INSERT_RULE, {**values, "tenant_id": tenant_id, "parameters": Jsonb(values["parameters"])})
    row = cur.fetchone()
    assert row is not None
    return row


def update_rule(cur: Cursor, tenant_id: int, rule_id: int, values: dict[str, Any]) -> dict[str, Any] | None:
    """Apply a patch; None when the rule is not the tenant's."""
    cur.execute(
        UPDATE_RULE,
        {
            "tenant_id": tenant_id,
            "id": rule_id,
            "action_ref": values.get("action_ref"),
            "description": values.get("description"),
            "set_criteria": "criteria" in values,
            "criteria": values.get("criteria"),
            "parameters": _json(values.get("parameters")),
            "enabled": values.get("enabled"),
            "notify_on_trigger": values.get("notify_on_trigger"),
        },
    )
    return cur.fetchone()

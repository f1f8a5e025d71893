"""Registering a pack's rules: each `rules/*.yaml` becomes a rule of the tenant, kept in step on reload.

Called by `chalicelib.packs.install` in the registering transaction, after
the pack's actions and sensors, so a rule may run the pack's own actions and
fire on its own sensors' triggers. A rule that brings its trigger inline owns
it: the trigger is created with the rule, its parameters follow the file on
reload, and it goes when the rule leaves the pack. Which rules (and inline
triggers) a pack made is read from its file index (`rule`, `trigger_ref`,
`inline` on the rule file's entry), so a reload needs no extra table. A
reload applies the file's `enabled`: the files are the definition.
Problems that need the database (an unknown trigger ref or action, a ref
already taken) are 400s naming the file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.core.errors import ValidationFailed
from chalicelib.core.pack_rules import InlineTrigger, RuleDef
from chalicelib.db import audit
from chalicelib.db.automation import (
    RULES,
    TRIGGERS,
    action_exists,
    insert_rule,
    insert_trigger,
    update_rule,
    update_trigger,
)
from chalicelib.db.pool import Cursor
from chalicelib.timers.ticker import schedule_now

TIMER_TYPES = frozenset({"interval", "date", "cron"})
AfterCommit = list[Callable[[], None]]


def index_entry(rule: RuleDef) -> dict[str, Any]:
    """What the pack's file index records of a rule file."""
    inline = isinstance(rule.trigger, InlineTrigger)
    return {"rule": rule.ref, "inline": inline, **({"trigger_ref": rule.trigger_ref()} if inline else {})}


def previous_rules(pack: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The rule entries of a pack version's file index."""
    if pack is None:
        return []
    return [e for e in pack.get("files") or [] if isinstance(e, dict) and e.get("rule")]


def _inline_trigger(cur: Cursor, tenant_id: int, rule: RuleDef, owned: set[str]) -> dict[str, Any]:
    assert isinstance(rule.trigger, InlineTrigger)
    spec, ref = rule.trigger, rule.trigger_ref()
    current = TRIGGERS.get_by(cur, tenant_id, "ref", ref)
    if current is not None and ref not in owned:
        raise ValidationFailed(f"{rule.source}: trigger ref {ref!r} is already taken by another trigger; "
                               "give the inline trigger a ref of its own (trigger.ref)")
    if current is not None and current["type"] != spec.type:
        TRIGGERS.delete(cur, tenant_id, current["id"])  # a new kind of trigger: the old one's events go with it
        current = None
    values = {"parameters": spec.parameters, "description": spec.description or f"trigger of rule {rule.ref}"}
    if current is None:
        return insert_trigger(cur, tenant_id, {"ref": ref, "type": spec.type, "enabled": True, **values})
    updated = update_trigger(cur, tenant_id, current["id"], values)
    assert updated is not None
    return updated


def _named_trigger(cur: Cursor, tenant_id: int, rule: RuleDef) -> dict[str, Any]:
    key = rule.trigger
    row = TRIGGERS.get(cur, tenant_id, key) if isinstance(key, int) else TRIGGERS.get_by(cur, tenant_id, "ref", key)
    if row is None:
        raise ValidationFailed(f"{rule.source}: trigger {key!r} not found: no trigger of yours has that "
                               "ref (create it first, define it inline, or name a sensor of this pack)")
    return row


def _install_one(cur: Cursor, tenant_id: int, rule: RuleDef, owned: set[str],
                 was: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Write one rule (and its inline trigger); returns the rule row, its trigger row and whether it is new."""
    if not action_exists(cur, tenant_id, rule.action_ref):
        raise ValidationFailed(f"{rule.source}: action {rule.action_ref!r} not found: no action of that ref "
                               "you can run (define it in the pack's actions/ or register it first)")
    if isinstance(rule.trigger, InlineTrigger):
        trigger = _inline_trigger(cur, tenant_id, rule, owned)
    else:
        trigger = _named_trigger(cur, tenant_id, rule)
    current = RULES.get_by(cur, tenant_id, "ref", rule.ref)
    if current is not None and rule.ref not in was:
        raise ValidationFailed(f"{rule.source}: rule ref {rule.ref!r} is already taken by a rule outside "
                               "this pack; rename the file or set name:")
    if current is not None and current["trigger_id"] != trigger["id"]:
        RULES.delete(cur, tenant_id, current["id"])  # a rule's trigger never changes in place
        current = None
    body = {**rule.api_body(int(trigger["id"])), "description": rule.description, "criteria": rule.criteria}
    if current is None:
        return insert_rule(cur, tenant_id, body), trigger, True
    row = update_rule(cur, tenant_id, current["id"], body)
    assert row is not None
    return row, trigger, False


def sync_pack(
    cur: Cursor,
    tenant_id: int | None,
    pack: dict[str, Any],
    rules: list[RuleDef],
    previous: list[dict[str, Any]],
    *,
    actor: str,
    after_commit: AfterCommit | None = None,
) -> dict[str, list[str]]:
    """Make the tenant's rules of this pack those its files define: added, updated, removed."""
    if tenant_id is None:
        if rules:
            raise ValidationFailed(f"{rules[0].source}: rules belong to tenant packs, not to system packs")
        return {}
    owned = {str(e["trigger_ref"]) for e in previous if e.get("inline") and e.get("trigger_ref")}
    was = {str(e["rule"]): e for e in previous}
    changes: dict[str, list[str]] = {"rules_added": [], "rules_updated": [], "rules_removed": []}
    for rule in rules:
        row, trigger, added = _install_one(cur, tenant_id, rule, owned, was)
        changes["rules_added" if added else "rules_updated"].append(rule.ref)
        was.pop(rule.ref, None)
        if row["enabled"] and trigger["type"] in TIMER_TYPES and after_commit is not None:
            after_commit.append(_fire_soon(int(trigger["id"])))
    for ref in was:
        gone = RULES.get_by(cur, tenant_id, "ref", ref)
        if gone is not None:
            RULES.delete(cur, tenant_id, gone["id"])
        changes["rules_removed"].append(ref)
    still_used = {r.trigger_ref() if isinstance(r.trigger, InlineTrigger) else r.trigger for r in rules}
    for ref in owned - still_used:  # a trigger another rule of the pack names by ref stays (no longer owned)
        orphan = TRIGGERS.get_by(cur, tenant_id, "ref", ref)
        if orphan is not None:
            TRIGGERS.delete(cur, tenant_id, orphan["id"])
    if any(changes.values()) and actor:
        audit.record(cur, tenant_id=tenant_id, actor=actor, action="pack.rules_synced", entity_type="pack",
                     entity_id=pack["id"], detail=changes)
    return changes


def _fire_soon(trigger_id: int) -> Callable[[], None]:
    """A timer used by a newly enabled rule fires from the commit on, not from the next tick."""
    return lambda: schedule_now(trigger_id)


def remove_pack_rules(cur: Cursor, tenant_id: int, pack: dict[str, Any]) -> list[str]:
    """Delete the rules (and inline triggers) a pack's files made, as the pack itself is deleted."""
    return sync_pack(cur, tenant_id, pack, [], previous_rules(pack), actor="")["rules_removed"]

"""Actions: create in one's own pack, list, get by id or ref, replace, patch, delete.

A ref resolves to the tenant's own action before a system one, so `core.echo`
works for everyone; system actions can be read by all and changed by none
(403), and another tenant's action is a 404.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from pydantic import ValidationError

from chalicelib.api.context import Call, endpoint
from chalicelib.api.params import PAGE, ChoiceParam, TextParam, enabled_filter, page
from chalicelib.api.serialize import listing, pick
from chalicelib.core.auth import Permission
from chalicelib.core.errors import Conflict, Forbidden, NotFound, Unprocessable, ValidationFailed
from chalicelib.core.packs import check_action, describe
from chalicelib.core.runners import RUNNER_TYPES
from chalicelib.db import actions as action_rows
from chalicelib.db import audit
from chalicelib.db import packs as pack_rows
from chalicelib.db.pool import Cursor
from chalicelib.models.packs import ActionCreate, ActionFields, ActionPatch, ActionReplace
from chalicelib.models.responses import Action, ActionList, Deleted
from chalicelib.packs import check_workflow_actions

bp = Blueprint(__name__)
ACTION_FIELDS = (
    "id", "ref", "pack", "name", "description", "runner_type", "entry_point", "parameters", "timeout",
    "retry", "http_config", "image", "workflow", "with_items", "concurrency", "enabled", "system", "created",
    "updated",
)
EDITABLE = (
    "description", "runner_type", "entry_point", "parameters", "code", "timeout", "retry",
    "http_config", "image", "workflow", "with_items", "concurrency", "enabled",
)
PACK = TextParam("pack", "Only the actions of this pack (its ref).", max_length=64)
RUNNER_TYPE = ChoiceParam("runner_type", "Only actions of this runner.", choices=frozenset(RUNNER_TYPES))
ENABLED = enabled_filter("actions")


def action_body(row: dict[str, Any], *, with_code: bool = False) -> dict[str, Any]:
    """An action as the API shows it; `code` only when one action is asked for."""
    shown = {**row, "pack": row["ref"].split(".", 1)[0], "system": row["tenant_id"] is None}
    body = pick(shown, ACTION_FIELDS)
    if with_code:
        body["code"] = row.get("code")
    return body


def _target_pack(call: Call, pack_ref: str) -> dict[str, Any]:
    pack = pack_rows.PACKS.get_by(call.cur, call.principal.tenant_id, "ref", pack_ref)
    if pack is None:
        raise NotFound(f"pack '{pack_ref}' not found; register it first with POST /api/v1/packs")
    if pack["tenant_id"] is None:
        raise Unprocessable(
            f"pack '{pack_ref}' is a system pack; actions cannot be added to it, register a pack of your own"
        )
    return pack


def _pack_files(cur: Cursor, tenant_id: int, pack_id: int) -> set[str]:
    pack = pack_rows.PACKS.get(cur, tenant_id, pack_id)
    return {entry["path"] for entry in (pack or {}).get("files") or []}


def _own_action(call: Call, key: str) -> dict[str, Any]:
    row = action_rows.find(call.cur, call.principal.tenant_id, key, with_code=True)
    if row is None:
        raise NotFound(f"action {key!r} not found")
    if row["tenant_id"] is None:
        raise Forbidden(f"action '{row['ref']}' belongs to a system pack; it cannot be changed or deleted")
    return row


def _same_identity(row: dict[str, Any], ref: str | None, pack: str | None) -> None:
    if ref is not None and ref != row["ref"]:
        raise ValidationFailed(f"ref cannot change ('{row['ref']}' -> '{ref}'); create a new action instead")
    if pack is not None and pack != row["ref"].split(".", 1)[0]:
        raise ValidationFailed(f"an action cannot move to another pack ('{pack}')")


def _save(call: Call, row: dict[str, Any], fields: ActionFields) -> dict[str, Any]:
    tenant_id = call.principal.tenant_id
    check_action(fields, _pack_files(call.cur, tenant_id, row["pack_id"]), where=f"action '{row['ref']}'")
    updated = action_rows.update(call.cur, tenant_id, row["id"], fields)
    if updated is None:
        raise NotFound(f"action {row['id']} not found")
    check_workflow_actions(call.cur, tenant_id, fields, where=f"action '{row['ref']}'")
    changed = [name for name in EDITABLE if row.get(name) != updated.get(name)]
    audit.record(
        call.cur, tenant_id=tenant_id, actor=call.principal.actor, action="action.updated",
        entity_type="action", entity_id=row["id"], detail={"ref": row["ref"], "changed": changed},
    )
    return action_body(updated)


@bp.route("/api/v1/actions", methods=["POST"])
@endpoint(Permission.WRITE, body=ActionCreate, status=201, response=Action, errors=(404, 409, 422))
def create_action(call: Call) -> dict[str, Any]:
    """Add an action to one of the tenant's packs."""
    body: ActionCreate = call.body
    pack_ref, name = body.ref.split(".", 1)
    if body.pack is not None and body.pack != pack_ref:
        raise ValidationFailed(f"ref '{body.ref}' must start with the pack's ref: '{body.pack}.'")
    pack = _target_pack(call, pack_ref)
    check_action(body, {e["path"] for e in pack["files"] or []}, where=f"action '{body.ref}'")
    tenant_id = call.principal.tenant_id
    if action_rows.find(call.cur, tenant_id, body.ref) is not None:
        raise Conflict(f"action '{body.ref}' already exists; change it with PUT or PATCH /api/v1/actions/{{id}}")
    row = action_rows.insert(call.cur, tenant_id, pack["id"], ref=body.ref, name=name, fields=body)
    check_workflow_actions(call.cur, tenant_id, body, where=f"action '{body.ref}'")
    audit.record(
        call.cur, tenant_id=tenant_id, actor=call.principal.actor, action="action.created",
        entity_type="action", entity_id=row["id"], detail={"ref": body.ref, "runner_type": body.runner_type},
    )
    return action_body(row)


@bp.route("/api/v1/actions", methods=["GET"])
@endpoint(Permission.READ, query=(*PAGE, PACK, RUNNER_TYPE, ENABLED), response=ActionList)
def list_actions(call: Call) -> dict[str, Any]:
    """The tenant's and the system actions, newest first; filters `pack`, `runner_type`, `enabled`."""
    window = page(call)
    tenant_id = call.principal.tenant_id
    where: dict[str, Any] = {
        "runner_type": RUNNER_TYPE.read(call),
        "enabled": ENABLED.read(call),
    }
    pack_ref = PACK.read(call)
    if pack_ref:
        pack = pack_rows.PACKS.get_by(call.cur, tenant_id, "ref", pack_ref)
        if pack is None:
            return listing([], 0, window.limit, window.offset)
        where["pack_id"] = pack["id"]
    rows, total = action_rows.ACTIONS.list(
        call.cur, tenant_id, limit=window.limit, offset=window.offset, where=where
    )
    return listing([action_body(r) for r in rows], total, window.limit, window.offset)


@bp.route("/api/v1/actions/{action_id}", methods=["GET"])
@endpoint(Permission.READ, response=Action)
def get_action(call: Call, action_id: str) -> dict[str, Any]:
    """One action by id or ref, with its inline code."""
    row = action_rows.find(call.cur, call.principal.tenant_id, action_id, with_code=True)
    if row is None:
        raise NotFound(f"action {action_id!r} not found")
    return action_body(row, with_code=True)


@bp.route("/api/v1/actions/{action_id}", methods=["PUT"])
@endpoint(Permission.WRITE, body=ActionReplace, response=Action, errors=(422,))
def replace_action(call: Call, action_id: str) -> dict[str, Any]:
    """Replace the whole definition; fields left out take their defaults."""
    body: ActionReplace = call.body
    row = _own_action(call, action_id)
    _same_identity(row, body.ref, body.pack)
    return _save(call, row, body)


@bp.route("/api/v1/actions/{action_id}", methods=["PATCH"])
@endpoint(Permission.WRITE, body=ActionPatch, response=Action, errors=(422,))
def patch_action(call: Call, action_id: str) -> dict[str, Any]:
    """Change only the fields given (null clears one); the result must still be a valid action."""
    body: ActionPatch = call.body
    row = _own_action(call, action_id)
    _same_identity(row, body.ref, body.pack)
    current = {name: row[name] for name in EDITABLE if row.get(name) is not None}
    merged = {**current, **body.model_dump(exclude_unset=True, exclude={"ref", "pack"})}
    try:
        fields = ActionFields.model_validate(merged)
    except ValidationError as exc:
        raise ValidationFailed(f"action '{row['ref']}' would be invalid: {describe(exc)}") from exc
    return _save(call, row, fields)


@bp.route("/api/v1/actions/{action_id}", methods=["DELETE"])
@endpoint(Permission.WRITE, response=Deleted)
def delete_action(call: Call, action_id: str) -> dict[str, Any]:
    """Delete one of the tenant's actions (a pack file's action returns on the next reload)."""
    row = _own_action(call, action_id)
    tenant_id = call.principal.tenant_id
    if not action_rows.ACTIONS.delete(call.cur, tenant_id, row["id"]):
        raise NotFound(f"action {action_id!r} not found")
    audit.record(
        call.cur, tenant_id=tenant_id, actor=call.principal.actor, action="action.deleted",
        entity_type="action", entity_id=row["id"], detail={"ref": row["ref"]},
    )
    return {"deleted": row["id"]}

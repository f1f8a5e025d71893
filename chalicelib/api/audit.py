"""The audit log, read-only: who did what to which entity, and when."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.context import Call, endpoint
from chalicelib.api.params import PAGE, TextParam, id_filter, page
from chalicelib.api.serialize import listing, pick
from chalicelib.core.auth import Permission
from chalicelib.core.errors import BadRequest
from chalicelib.db.audit import AUDIT
from chalicelib.models.responses import AuditEntryList

bp = Blueprint(__name__)
FIELDS = ("at", "actor", "action", "entity_type", "entity_id", "detail")
EXECUTION_ID = id_filter("execution_id", "entries about this execution (entity_type=execution&entity_id=)")
ENTITY_TYPE = TextParam("entity_type", "Only entries about this kind of entity (`rule`...).", max_length=64)
ENTITY_ID = TextParam("entity_id", "Only entries about the entity of this id.", max_length=256)
ACTOR = TextParam("actor", "Only entries by this actor (`user:<name>`, `execution:<id>`).", max_length=256)
ACTION = TextParam("action", "Only entries of this action (`rule.created`...).", max_length=128)


@bp.route("/api/v1/audit", methods=["GET"])
@endpoint(Permission.READ, query=(*PAGE, EXECUTION_ID, ENTITY_TYPE, ENTITY_ID, ACTOR, ACTION),
          response=AuditEntryList)
def list_audit(call: Call) -> dict[str, Any]:
    """Newest first; `execution_id=` is shorthand for `entity_type=execution&entity_id=`."""
    window = page(call)
    execution_id = EXECUTION_ID.read(call)
    entity_type = ENTITY_TYPE.read(call)
    entity_id = ENTITY_ID.read(call)
    if execution_id is not None:
        if entity_type not in (None, "execution"):
            raise BadRequest("execution_id cannot be combined with another entity_type")
        entity_type, entity_id = "execution", str(execution_id)
    rows, total = AUDIT.list(
        call.cur,
        call.principal.tenant_id,
        limit=window.limit,
        offset=window.offset,
        where={
            "entity_type": entity_type,
            "entity_id": entity_id,
            "actor": ACTOR.read(call),
            "action": ACTION.read(call),
        },
    )
    return listing([pick(r, ("id", *FIELDS)) for r in rows], total, window.limit, window.offset)

"""The audit log, read-only: who did what to which entity, and when."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.context import Call, endpoint
from chalicelib.api.params import id_param, page
from chalicelib.api.serialize import listing, pick
from chalicelib.core.auth import Permission
from chalicelib.core.errors import BadRequest
from chalicelib.db.audit import AUDIT

bp = Blueprint(__name__)
FIELDS = ("at", "actor", "action", "entity_type", "entity_id", "detail")


@bp.route("/api/v1/audit", methods=["GET"])
@endpoint(Permission.READ)
def list_audit(call: Call) -> dict[str, Any]:
    """Newest first; `execution_id=` is shorthand for `entity_type=execution&entity_id=`."""
    window = page(call)
    execution_id = id_param(call, "execution_id")
    entity_type = call.query("entity_type")
    entity_id = call.query("entity_id")
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
            "actor": call.query("actor"),
            "action": call.query("action"),
        },
    )
    return listing([pick(r, ("id", *FIELDS)) for r in rows], total, window.limit, window.offset)

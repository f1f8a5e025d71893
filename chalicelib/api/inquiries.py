"""Inquiries: list and read the tenant's questions to humans, and answer them."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.context import Call, endpoint
from chalicelib.api.params import PAGE, ChoiceParam, id_filter, page, path_id
from chalicelib.api.serialize import listing, pick
from chalicelib.core.auth import Permission
from chalicelib.core.errors import NotFound
from chalicelib.db import inquiries as rows
from chalicelib.inquiries import respond
from chalicelib.models.inquiries import InquiryResponse
from chalicelib.models.responses import Inquiry, InquiryList

bp = Blueprint(__name__)
INQUIRY_FIELDS = (
    "id", "execution_id", "workflow_execution_id", "status", "prompt", "schema", "roles", "timeout_at",
    "response", "responded_by", "responded_at", "created",
)
STATUSES = frozenset({"pending", "responded", "expired"})
STATUS = ChoiceParam("status", "Only inquiries of this status.", choices=STATUSES)
EXECUTION_ID = id_filter("execution_id", "the inquiries of this execution (its own, or its workflow's)")


def inquiry_body(row: dict[str, Any]) -> dict[str, Any]:
    """An inquiry as the API shows it: who answered by name (the task token never leaves the server)."""
    return pick({**row, "responded_by": row.get("responded_by_username")}, INQUIRY_FIELDS)


@bp.route("/api/v1/inquiries", methods=["GET"])
@endpoint(Permission.READ, query=(*PAGE, STATUS, EXECUTION_ID), response=InquiryList)
def list_inquiries(call: Call) -> dict[str, Any]:
    """Newest first; filters `status` and `execution_id` (the inquiry's own execution or its workflow)."""
    window = page(call)
    found, total = rows.list_page(
        call.cur, call.principal.tenant_id, status=STATUS.read(call),
        execution_id=EXECUTION_ID.read(call), limit=window.limit, offset=window.offset,
    )
    return listing([inquiry_body(r) for r in found], total, window.limit, window.offset)


@bp.route("/api/v1/inquiries/{inquiry_id}", methods=["GET"])
@endpoint(Permission.READ, response=Inquiry)
def get_inquiry(call: Call, inquiry_id: str) -> dict[str, Any]:
    """One inquiry."""
    row = rows.get(call.cur, call.principal.tenant_id, path_id(inquiry_id, "inquiry"))
    if row is None:
        raise NotFound(f"inquiry {inquiry_id} not found")
    return inquiry_body(row)


@bp.route("/api/v1/inquiries/{inquiry_id}/respond", methods=["POST"])
@endpoint(Permission.EXECUTE, body=InquiryResponse, response=Inquiry, errors=(409,))
def respond_inquiry(call: Call, inquiry_id: str) -> dict[str, Any]:
    """Answer a pending inquiry: 400 naming a field the schema refuses, 403 for a role not allowed, 409 twice."""
    body: InquiryResponse = call.body
    row = respond(
        call.cur, tenant_id=call.principal.tenant_id, inquiry_id=path_id(inquiry_id, "inquiry"),
        response=body.response, user_id=call.principal.user_id, role=str(call.principal.role),
        actor=call.principal.actor, after_commit=call.after_commit,
    )
    return inquiry_body(row)

"""Packs: register (inline files or a base64 tar.gz), list, get, reload, delete.

System packs (`core`) appear in every tenant's list and can be read by all,
but only the platform changes them: a tenant's attempt is a 403 that says
so, while another tenant's pack stays a 404.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib import packs
from chalicelib.api.context import Call, endpoint
from chalicelib.api.params import PAGE, TextParam, page
from chalicelib.api.serialize import listing, pick
from chalicelib.config import settings
from chalicelib.core.auth import Permission
from chalicelib.core.errors import Forbidden, NotFound
from chalicelib.core.pack_archive import Files, decode_archive, inline_files, unpack_archive
from chalicelib.db import audit
from chalicelib.db import packs as pack_rows
from chalicelib.models.packs import PackCreate, PackReload
from chalicelib.models.responses import Deleted, Pack, PackList, PackReloaded

bp = Blueprint(__name__)
PACK_FIELDS = ("id", "ref", "version", "label", "description", "created", "updated")
REF = TextParam("ref", "Only the pack of this ref.", max_length=64)


def body_limit() -> int:
    """Largest pack request: an archive of max_archive_bytes in base64 (4/3), plus the JSON around it.

    Read through the uncached settings builder, because the decorator below
    evaluates it at import and must not freeze the process's cached settings.
    """
    return (settings.__wrapped__().max_archive_bytes * 4) // 3 + 64 * 1024


def received_files(files: dict[str, str] | None, archive: str | None) -> Files | None:
    """The files a request carries (inline or archive), validated; None when it carries none."""
    if files is not None:
        return inline_files(files)
    if archive is not None:
        return unpack_archive(decode_archive(archive, max_bytes=settings().max_archive_bytes))
    return None


def pack_body(row: dict[str, Any], action_refs: list[str], *, with_files: bool = False) -> dict[str, Any]:
    """A pack as the API shows it."""
    body = pick(row, PACK_FIELDS)
    body["system"] = row["tenant_id"] is None
    body["actions"] = action_refs
    if with_files:
        body["files"] = [entry["path"] for entry in row["files"] or []]
    return body


def _visible(call: Call, key: str) -> dict[str, Any]:
    row = pack_rows.find(call.cur, call.principal.tenant_id, key)
    if row is None:
        raise NotFound(f"pack {key!r} not found")
    return row


def _own(call: Call, key: str, verb: str) -> dict[str, Any]:
    row = _visible(call, key)
    if row["tenant_id"] is None:
        raise Forbidden(f"pack '{row['ref']}' is a system pack shared by all tenants; it cannot be {verb}")
    return row


@bp.route("/api/v1/packs", methods=["POST"])
@endpoint(Permission.WRITE, body=PackCreate, status=201, max_body=body_limit(), response=Pack, errors=(409, 422))
def register_pack(call: Call) -> dict[str, Any]:
    """Register a pack and the actions its `actions/*.yaml` define; all or nothing."""
    body: PackCreate = call.body
    loaded = packs.load(
        received_files(body.files, body.archive) or {},
        ref=body.ref, version=body.version, label=body.label, description=body.description,
    )
    packs.check_new_ref(call.cur, call.principal.tenant_id, loaded.identity.ref)
    row, _ = packs.install(call.cur, call.principal.tenant_id, loaded, actor=call.principal.actor,
                           after_commit=call.after_commit)
    return pack_body(row, sorted(a.ref for a in loaded.actions), with_files=True)


@bp.route("/api/v1/packs", methods=["GET"])
@endpoint(Permission.READ, query=(*PAGE, REF), response=PackList)
def list_packs(call: Call) -> dict[str, Any]:
    """The tenant's packs and the system packs, newest first."""
    window = page(call)
    tenant_id = call.principal.tenant_id
    rows, total = pack_rows.PACKS.list(
        call.cur, tenant_id, limit=window.limit, offset=window.offset, where={"ref": REF.read(call)}
    )
    refs = pack_rows.action_refs(call.cur, tenant_id, [r["id"] for r in rows])
    return listing([pack_body(r, refs[r["id"]]) for r in rows], total, window.limit, window.offset)


@bp.route("/api/v1/packs/{pack_id}", methods=["GET"])
@endpoint(Permission.READ, response=Pack)
def get_pack(call: Call, pack_id: str) -> dict[str, Any]:
    """One pack by id or ref, with its file list and action refs."""
    row = _visible(call, pack_id)
    refs = pack_rows.action_refs(call.cur, call.principal.tenant_id, [row["id"]])
    return pack_body(row, refs[row["id"]], with_files=True)


@bp.route("/api/v1/packs/{pack_id}/reload", methods=["POST"])
@endpoint(Permission.WRITE, body=PackReload, body_required=False, max_body=body_limit(), response=PackReloaded,
          errors=(409, 422))
def reload_pack(call: Call, pack_id: str) -> dict[str, Any]:
    """Install the pack again as a new version: new files if given, else the stored ones re-read."""
    row = _own(call, pack_id, "reloaded by a tenant")
    body: PackReload = call.body or PackReload()
    updated, changes = packs.reload(
        call.cur, call.principal.tenant_id, row["id"], received_files(body.files, body.archive),
        actor=call.principal.actor, version=body.version, label=body.label, description=body.description,
        after_commit=call.after_commit,
    )
    refs = pack_rows.action_refs(call.cur, call.principal.tenant_id, [updated["id"]])
    return {**pack_body(updated, refs[updated["id"]], with_files=True), "changes": changes}


@bp.route("/api/v1/packs/{pack_id}", methods=["DELETE"])
@endpoint(Permission.WRITE, response=Deleted)
def delete_pack(call: Call, pack_id: str) -> dict[str, Any]:
    """Delete the tenant's pack and its actions; stored versions stay for executions still running."""
    row = _own(call, pack_id, "deleted")
    tenant_id = call.principal.tenant_id
    refs = pack_rows.action_refs(call.cur, tenant_id, [row["id"]])[row["id"]]
    packs.delete_rules(call.cur, tenant_id, row)  # the rules its rules/*.yaml made
    if not pack_rows.PACKS.delete(call.cur, tenant_id, row["id"]):
        raise NotFound(f"pack {pack_id!r} not found")
    audit.record(
        call.cur, tenant_id=tenant_id, actor=call.principal.actor, action="pack.deleted",
        entity_type="pack", entity_id=row["id"],
        detail={"ref": row["ref"], "version": row["version"], "actions": refs},
    )
    return {"deleted": row["id"]}

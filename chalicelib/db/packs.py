"""Pack rows: lookups by id or ref, the ref rules, insert and update.

A pack row with `tenant_id IS NULL` is a system pack, readable by every
tenant (row-level security has a `system_read` policy for it) and written
only by `load_system_packs()` in a system transaction.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.core.jsondoc import as_id
from chalicelib.db.crud import Table
from chalicelib.db.pool import Cursor

PACK_COLUMNS = (
    "id", "tenant_id", "ref", "version", "label", "description", "storage_key", "files", "created", "updated",
)
PACKS = Table("pack", PACK_COLUMNS, frozenset({"ref"}), shares_system_rows=True)

SYSTEM_PACK_BY_REF = """
SELECT id, tenant_id, ref, version, label, description, storage_key, files, created, updated
FROM attune.pack WHERE tenant_id IS NULL AND ref = %(ref)s
"""
OWN_PACK_BY_REF = """
SELECT id FROM attune.pack WHERE tenant_id = %(tenant_id)s AND ref = %(ref)s
"""
# Reloads of one pack serialise on its row, so two concurrent reloads cannot
# compute the same next version and overwrite each other's S3 object.
LOCK_PACK = """
SELECT id, tenant_id, ref, version, label, description, storage_key, files, created, updated
FROM attune.pack WHERE id = %(id)s AND tenant_id IS NOT DISTINCT FROM %(tenant_id)s
FOR UPDATE
"""
INSERT_PACK = """
INSERT INTO attune.pack (tenant_id, ref, version, label, description, storage_key, files)
VALUES (%(tenant_id)s, %(ref)s, %(version)s, %(label)s, %(description)s, %(storage_key)s, %(files)s)
RETURNING id, tenant_id, ref, version, label, description, storage_key, files, created, updated
"""
UPDATE_PACK = """
UPDATE attune.pack
SET version = %(version)s, label = %(label)s, description = %(description)s,
    storage_key = %(storage_key)s, files = %(files)s
WHERE id = %(id)s AND tenant_id IS NOT DISTINCT FROM %(tenant_id)s
RETURNING id, tenant_id, ref, version, label, description, storage_key, files, created, updated
"""
ACTION_REFS_OF_PACKS = """
SELECT pack_id, ref FROM attune.action
WHERE pack_id = ANY(%(pack_ids)s) AND (tenant_id = %(tenant_id)s OR tenant_id IS NULL)
ORDER BY ref
"""
# The local cloud's roles may start together; one of them loads system packs at a time.
LOCK_SYSTEM_PACKS = "SELECT pg_advisory_xact_lock(hashtext('attune.system_packs'))"


def find(cur: Cursor, tenant_id: int, key: str) -> dict[str, Any] | None:
    """A pack the tenant can see, by numeric id or by ref (its own before a system one)."""
    pack_id = as_id(key)
    if pack_id is not None:
        row = PACKS.get(cur, tenant_id, pack_id)
        if row is not None:
            return row
    return PACKS.get_by(cur, tenant_id, "ref", key)


def system_pack(cur: Cursor, ref: str) -> dict[str, Any] | None:
    """The system pack with this ref, if any."""
    cur.execute(SYSTEM_PACK_BY_REF, {"ref": ref})
    return cur.fetchone()


def tenant_has_ref(cur: Cursor, tenant_id: int, ref: str) -> bool:
    """Whether the tenant already registered a pack with this ref."""
    cur.execute(OWN_PACK_BY_REF, {"tenant_id": tenant_id, "ref": ref})
    return cur.fetchone() is not None


def lock(cur: Cursor, tenant_id: int | None, pack_id: int) -> dict[str, Any] | None:
    """The pack row, locked for the rest of the transaction."""
    cur.execute(LOCK_PACK, {"id": pack_id, "tenant_id": tenant_id})
    return cur.fetchone()


def lock_system_packs(cur: Cursor) -> None:
    """Serialise system pack loading across processes, until the transaction ends."""
    cur.execute(LOCK_SYSTEM_PACKS)


def insert(
    cur: Cursor,
    tenant_id: int | None,
    *,
    ref: str,
    version: str,
    label: str | None,
    description: str | None,
    storage_key: str,
    files: list[dict[str, Any]],
) -> dict[str, Any]:
    """A new pack row (tenant_id None: a system pack)."""
    cur.execute(
        INSERT_PACK,
        {
            "tenant_id": tenant_id, "ref": ref, "version": version, "label": label,
            "description": description, "storage_key": storage_key, "files": Jsonb(files),
        },
    )
    row = cur.fetchone()
    assert row is not None
    return row


def update(
    cur: Cursor,
    tenant_id: int | None,
    pack_id: int,
    *,
    version: str,
    label: str | None,
    description: str | None,
    storage_key: str,
    files: list[dict[str, Any]],
) -> dict[str, Any]:
    """Point the pack at a new version of its files."""
    cur.execute(
        UPDATE_PACK,
        {
            "id": pack_id, "tenant_id": tenant_id, "version": version, "label": label,
            "description": description, "storage_key": storage_key, "files": Jsonb(files),
        },
    )
    row = cur.fetchone()
    assert row is not None
    return row


def action_refs(cur: Cursor, tenant_id: int, pack_ids: list[int]) -> dict[int, list[str]]:
    """The action refs of each pack, in one query for a whole page of packs."""
    out: dict[int, list[str]] = {pid: [] for pid in pack_ids}
    if not pack_ids:
        return out
    cur.execute(ACTION_REFS_OF_PACKS, {"pack_ids": pack_ids, "tenant_id": tenant_id})
    for row in cur.fetchall():
        out[row["pack_id"]].append(row["ref"])
    return out

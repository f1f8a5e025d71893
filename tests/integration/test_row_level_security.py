"""Row-level security: even a query that forgets its tenant filter sees only its tenant's rows."""

from __future__ import annotations

import psycopg
import pytest

from chalicelib.db.pool import system_tx, tenant_tx


def _seed() -> tuple[int, int]:
    with system_tx() as cur:
        ids = []
        for name in ("a", "b"):
            cur.execute("INSERT INTO attune.tenant (name) VALUES (%s) RETURNING id", (name,))
            row = cur.fetchone()
            assert row is not None
            ids.append(row["id"])
        for tid in ids:
            cur.execute(
                "INSERT INTO attune.datastore_item (tenant_id, key, value) VALUES (%s, 'k', '1')",
                (tid,),
            )
        cur.execute("INSERT INTO attune.pack (tenant_id, ref, version, storage_key) VALUES (NULL, 'sys', '1.0.0', 's')")
    return ids[0], ids[1]


def test_unfiltered_select_sees_only_own_and_system_rows(db: str) -> None:
    a, _ = _seed()
    with tenant_tx(a) as cur:
        cur.execute("SELECT tenant_id FROM attune.datastore_item")
        assert [r["tenant_id"] for r in cur.fetchall()] == [a]
        cur.execute("SELECT ref FROM attune.pack")
        assert [r["ref"] for r in cur.fetchall()] == ["sys"]


def test_cannot_write_into_another_tenant(db: str) -> None:
    a, b = _seed()
    with pytest.raises(Exception, match="row-level security"), tenant_tx(a) as cur:
        cur.execute("INSERT INTO attune.datastore_item (tenant_id, key, value) VALUES (%s, 'x', '1')", (b,))


def test_cannot_change_or_delete_other_tenant_or_system_rows(db: str) -> None:
    a, b = _seed()
    with tenant_tx(a) as cur:
        cur.execute("UPDATE attune.datastore_item SET value = '2' WHERE tenant_id = %s", (b,))
        assert cur.rowcount == 0
        cur.execute("DELETE FROM attune.pack WHERE ref = 'sys'")
        assert cur.rowcount == 0
    with tenant_tx(b) as cur:
        cur.execute("SELECT value FROM attune.datastore_item")
        assert [r["value"] for r in cur.fetchall()] == [1]


def test_audit_log_refuses_update_and_delete_even_for_the_owner(db: str) -> None:
    a, _ = _seed()
    with tenant_tx(a) as cur:
        cur.execute(
            "INSERT INTO attune.audit_log (tenant_id, actor, action, entity_type) VALUES (%s, 'u', 'x', 't')", (a,)
        )
    # The login user owns the table and bypasses grants: the trigger still refuses.
    with psycopg.connect(db, autocommit=True) as conn:
        for statement in ("UPDATE attune.audit_log SET actor = 'z'", "DELETE FROM attune.audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("TRUNCATE attune.audit_log")
        assert conn.execute("SELECT count(*) FROM attune.audit_log").fetchone() == (1,)

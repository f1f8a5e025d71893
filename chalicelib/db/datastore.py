"""SQL of the tenant datastore (`attune.datastore_item`).

Every query filters by tenant (row-level security is the second wall), and
every read filters out expired items, so an item is invisible the instant
its TTL runs out whether or not anything has purged it yet; purging is lazy
(`PURGE_EXPIRED_*`) and only reclaims space. `now()` is the transaction's
start time, so one transaction sees one consistent set of live items.

Only `GET_ITEM` and `GET_SEALED` return `ciphertext`/`wrapped_key`: lists
never carry sealed bytes, however they are rendered.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.db.pool import Cursor

# Drops this key's row if it has expired, so the upsert that follows
# creates a fresh item (new id, new `created`) rather than reviving it.
PURGE_EXPIRED_KEY = """
DELETE FROM attune.datastore_item
WHERE tenant_id = %(tenant_id)s AND key = %(key)s AND expires_at <= now()
"""
UPSERT_ITEM = """
INSERT INTO attune.datastore_item (tenant_id, key, value, encrypted, ciphertext, wrapped_key, expires_at)
VALUES (%(tenant_id)s, %(key)s, %(value)s, %(encrypted)s, %(ciphertext)s, %(wrapped_key)s,
        now() + make_interval(secs => %(ttl)s::double precision))
ON CONFLICT (tenant_id, key) DO UPDATE SET
    value = EXCLUDED.value,
    encrypted = EXCLUDED.encrypted,
    ciphertext = EXCLUDED.ciphertext,
    wrapped_key = EXCLUDED.wrapped_key,
    expires_at = EXCLUDED.expires_at
RETURNING id, key, value, encrypted, expires_at, created, updated, (xmax = 0) AS inserted
"""
GET_ITEM = """
SELECT id, key, value, encrypted, ciphertext, wrapped_key, expires_at, created, updated
FROM attune.datastore_item
WHERE tenant_id = %(tenant_id)s AND key = %(key)s
  AND (expires_at IS NULL OR expires_at > now())
"""
LIST_ITEMS = """
SELECT id, key, value, encrypted, expires_at, created, updated
FROM attune.datastore_item
WHERE tenant_id = %(tenant_id)s
  AND (expires_at IS NULL OR expires_at > now())
  AND (%(prefix)s::text IS NULL OR starts_with(key, %(prefix)s::text))
ORDER BY id DESC
LIMIT %(limit)s OFFSET %(offset)s
"""
HAS_PREFIX = """
SELECT EXISTS (SELECT 1 FROM attune.datastore_item
               WHERE tenant_id = %(tenant_id)s AND starts_with(key, %(prefix)s::text)
                 AND (expires_at IS NULL OR expires_at > now())) AS found
"""
COUNT_ITEMS = """
SELECT count(*) AS n
FROM attune.datastore_item
WHERE tenant_id = %(tenant_id)s
  AND (expires_at IS NULL OR expires_at > now())
  AND (%(prefix)s::text IS NULL OR starts_with(key, %(prefix)s::text))
"""
# The sealed bytes of listed encrypted items, fetched only when a list asks to decrypt.
GET_SEALED = """
SELECT id, key, ciphertext, wrapped_key
FROM attune.datastore_item
WHERE tenant_id = %(tenant_id)s AND id = ANY(%(ids)s) AND encrypted
  AND (expires_at IS NULL OR expires_at > now())
"""
# Deletes the row even when expired (that is a purge), but reports whether
# it was live, because deleting an invisible item is a 404.
DELETE_ITEM = """
DELETE FROM attune.datastore_item
WHERE tenant_id = %(tenant_id)s AND key = %(key)s
RETURNING id, (expires_at IS NULL OR expires_at > now()) AS live
"""
# Bounded so a write never pays for a large backlog; the sweep below mops up.
PURGE_EXPIRED_TENANT = """
DELETE FROM attune.datastore_item
WHERE id IN (
    SELECT id FROM attune.datastore_item
    WHERE tenant_id = %(tenant_id)s AND expires_at <= now()
    LIMIT %(batch)s
)
"""
# For a system transaction (RLS bypass): a periodic sweep across tenants, in batches.
PURGE_EXPIRED_ALL = """
DELETE FROM attune.datastore_item
WHERE id IN (
    SELECT id FROM attune.datastore_item
    WHERE expires_at <= now()
    ORDER BY expires_at
    LIMIT %(batch)s
)
"""


def upsert(
    cur: Cursor,
    tenant_id: int,
    key: str,
    *,
    value: Jsonb | None,
    ciphertext: bytes | None,
    wrapped_key: bytes | None,
    ttl: int | None,
) -> dict[str, Any]:
    """Create or replace `key`; the stored row (no sealed bytes) with `inserted`."""
    cur.execute(PURGE_EXPIRED_KEY, {"tenant_id": tenant_id, "key": key})
    cur.execute(
        UPSERT_ITEM,
        {
            "tenant_id": tenant_id,
            "key": key,
            "value": value,
            "encrypted": ciphertext is not None,
            "ciphertext": ciphertext,
            "wrapped_key": wrapped_key,
            "ttl": ttl,
        },
    )
    row = cur.fetchone()
    assert row is not None
    return row


def get(cur: Cursor, tenant_id: int, key: str) -> dict[str, Any] | None:
    """The live row of `key`, sealed bytes included, or None."""
    cur.execute(GET_ITEM, {"tenant_id": tenant_id, "key": key})
    return cur.fetchone()


def has_prefix(cur: Cursor, tenant_id: int, prefix: str) -> bool:
    """Whether any live key starts with `prefix` (`config.` for `{{ datastore.config.api_url }}`)."""
    cur.execute(HAS_PREFIX, {"tenant_id": tenant_id, "prefix": prefix})
    row = cur.fetchone()
    return bool(row and row["found"])


def list_page(
    cur: Cursor, tenant_id: int, *, prefix: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of live rows (never sealed bytes), newest first, and how many match."""
    params = {"tenant_id": tenant_id, "prefix": prefix, "limit": limit, "offset": offset}
    cur.execute(LIST_ITEMS, params)
    rows = cur.fetchall()
    if offset == 0 and len(rows) < limit:
        return rows, len(rows)
    cur.execute(COUNT_ITEMS, params)
    counted = cur.fetchone()
    return rows, int(counted["n"]) if counted else 0


def sealed(cur: Cursor, tenant_id: int, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Sealed bytes of the given encrypted items, by id."""
    if not ids:
        return {}
    cur.execute(GET_SEALED, {"tenant_id": tenant_id, "ids": ids})
    return {int(r["id"]): r for r in cur.fetchall()}


def delete(cur: Cursor, tenant_id: int, key: str) -> bool:
    """Delete `key`; whether a live item was deleted (an expired one is purged, and False)."""
    cur.execute(DELETE_ITEM, {"tenant_id": tenant_id, "key": key})
    row = cur.fetchone()
    return bool(row and row["live"])


def purge_expired(cur: Cursor, tenant_id: int, batch: int = 100) -> int:
    """Delete up to `batch` of the tenant's expired rows; how many."""
    cur.execute(PURGE_EXPIRED_TENANT, {"tenant_id": tenant_id, "batch": batch})
    return cur.rowcount


def purge_expired_all(cur: Cursor, batch: int = 1000) -> int:
    """Delete up to `batch` expired rows of any tenant (system transaction only); how many."""
    cur.execute(PURGE_EXPIRED_ALL, {"batch": batch})
    return cur.rowcount

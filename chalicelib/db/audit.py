"""The append-only audit log (the database refuses UPDATE, DELETE and TRUNCATE)."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.db.crud import Table
from chalicelib.db.pool import Cursor

AUDIT = Table(
    "audit_log",
    ("id", "at", "actor", "action", "entity_type", "entity_id", "detail"),
    frozenset({"entity_type", "entity_id", "actor", "action"}),
)

INSERT_AUDIT = """
INSERT INTO attune.audit_log (tenant_id, actor, action, entity_type, entity_id, detail)
VALUES (%(tenant_id)s, %(actor)s, %(action)s, %(entity_type)s, %(entity_id)s, %(detail)s)
"""


def record(
    cur: Cursor,
    *,
    tenant_id: int | None,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: int | str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry, in the caller's transaction so it commits with the change it describes."""
    cur.execute(
        INSERT_AUDIT,
        {
            "tenant_id": tenant_id,
            "actor": actor,
            "action": action,
            "entity_type": entity_type,
            "entity_id": None if entity_id is None else str(entity_id),
            "detail": Jsonb(detail or {}),
        },
    )

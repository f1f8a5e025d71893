"""Generic tenant-scoped reads and deletes, composed with psycopg.sql (never f-strings).

Every entity table has `id` and `tenant_id`; this module is the one place
that writes the tenant filter for get/list/delete, so no endpoint can forget
it. System rows (tenant_id IS NULL) are included only for tables that share
them (packs, actions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from chalicelib.db.pool import Cursor


@dataclass(frozen=True)
class Table:
    """An entity table: its public columns and which filters lists accept."""

    name: str
    columns: tuple[str, ...]
    filters: frozenset[str] = field(default_factory=frozenset)
    shares_system_rows: bool = False
    # Filters that are not `column = value` (an EXISTS on another table): the
    # filter's name -> a named query constant reading the value as %(f_<name>)s.
    filter_conditions: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        undeclared = set(self.filter_conditions) - self.filters
        if undeclared:
            raise ValueError(f"conditions for undeclared filters on {self.name}: {sorted(undeclared)}")

    def _ident(self) -> sql.Composed:
        return sql.SQL("attune.{}").format(sql.Identifier(self.name))

    def _cols(self) -> sql.Composed:
        return sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)

    def _scope(self) -> sql.SQL:
        if self.shares_system_rows:
            return sql.SQL("(tenant_id = %(tenant_id)s OR tenant_id IS NULL)")
        return sql.SQL("tenant_id = %(tenant_id)s")

    def _condition(self, name: str) -> sql.Composable:
        custom = self.filter_conditions.get(name)
        if custom is not None:
            return sql.SQL(custom)  # a module constant, never user input
        return sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(f"f_{name}"))

    def get(self, cur: Cursor, tenant_id: int, entity_id: int) -> dict[str, Any] | None:
        """One row by id, if the tenant may see it."""
        query = sql.SQL("SELECT {cols} FROM {table} WHERE {scope} AND id = %(id)s").format(
            cols=self._cols(), table=self._ident(), scope=self._scope()
        )
        cur.execute(query, {"tenant_id": tenant_id, "id": entity_id})
        return cur.fetchone()

    def get_by(self, cur: Cursor, tenant_id: int, column: str, value: Any) -> dict[str, Any] | None:
        """One row by a unique column (a ref), the tenant's own before a system one."""
        query = sql.SQL(
            "SELECT {cols} FROM {table} WHERE {scope} AND {col} = %(value)s ORDER BY tenant_id NULLS LAST LIMIT 1"
        ).format(cols=self._cols(), table=self._ident(), scope=self._scope(), col=sql.Identifier(column))
        cur.execute(query, {"tenant_id": tenant_id, "value": value})
        return cur.fetchone()

    def list(
        self,
        cur: Cursor,
        tenant_id: int,
        *,
        limit: int,
        offset: int,
        where: dict[str, Any] | None = None,
        oldest_first: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page, newest first (or oldest first), and the total matching; `where` keys must be declared filters."""
        where = {k: v for k, v in (where or {}).items() if v is not None}
        unknown = set(where) - self.filters
        if unknown:
            raise ValueError(f"undeclared filters on {self.name}: {sorted(unknown)}")
        conds = [self._scope()] + [self._condition(k) for k in sorted(where)]
        params: dict[str, Any] = {"tenant_id": tenant_id, "limit": limit, "offset": offset}
        params.update({f"f_{k}": v for k, v in where.items()})
        condition = sql.SQL(" AND ").join(conds)
        page_query = sql.SQL(
            "SELECT {cols} FROM {table} WHERE {cond} ORDER BY id {order} LIMIT %(limit)s OFFSET %(offset)s"
        ).format(cols=self._cols(), table=self._ident(), cond=condition,
                 order=sql.SQL("ASC" if oldest_first else "DESC"))
        count_query = sql.SQL("SELECT count(*) AS n FROM {table} WHERE {cond}").format(
            table=self._ident(), cond=condition
        )
        cur.execute(page_query, params)
        rows = cur.fetchall()
        if offset == 0 and len(rows) < limit:
            total = len(rows)
        else:
            cur.execute(count_query, params)
            counted = cur.fetchone()
            total = int(counted["n"]) if counted else 0
        return rows, total

    def delete(self, cur: Cursor, tenant_id: int, entity_id: int) -> bool:
        """Delete the tenant's own row (never a system row); whether one was deleted."""
        query = sql.SQL("DELETE FROM {table} WHERE tenant_id = %(tenant_id)s AND id = %(id)s").format(
            table=self._ident()
        )
        cur.execute(query, {"tenant_id": tenant_id, "id": entity_id})
        return cur.rowcount > 0

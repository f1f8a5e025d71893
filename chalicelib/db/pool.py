"""Connection pool and the two kinds of transaction the code may open.

Every tenant transaction sets `attune.tenant_id` locally so that PostgreSQL
row-level security is a second wall behind the tenant filter written in each
query; system transactions (workers, login, migrations of data) set the
bypass flag instead and must filter by tenant themselves. Connections run as
the NOLOGIN role `attune_app`, which does not bypass RLS, even when the login
user is a superuser (the embedded server's).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from chalicelib.config import settings
from chalicelib.core.errors import (
    AttuneError,
    Conflict,
    Forbidden,
    ServiceUnavailable,
    Unprocessable,
    ValidationFailed,
)

Cursor = psycopg.Cursor[DictRow]

SET_APP_ROLE = "SET ROLE attune_app"
SET_TENANT = "SELECT set_config('attune.tenant_id', %s, true)"
SET_BYPASS = "SELECT set_config('attune.rls_bypass', 'on', true)"

_lock = threading.Lock()
_pool: ConnectionPool[psycopg.Connection[DictRow]] | None = None


def database_url() -> str:
    """The configured database URL; the local cloud exports it to every role."""
    url = settings().database_url
    if not url:
        raise ServiceUnavailable(
            "ATTUNE_DATABASE_URL is not set: start the local cloud with `attune dev` or point it at a PostgreSQL server"
        )
    return url


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute(SET_APP_ROLE)
    conn.commit()


def pool() -> ConnectionPool[psycopg.Connection[DictRow]]:
    """The process's pool, opened on first use so imports never touch the network."""
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                cfg = settings()
                p: ConnectionPool[psycopg.Connection[DictRow]] = ConnectionPool(
                    database_url(),
                    min_size=cfg.db_pool_min,
                    max_size=cfg.db_pool_max,
                    kwargs={"row_factory": dict_row},
                    configure=_configure,
                    open=False,
                    name="attune",
                )
                p.open(wait=True, timeout=30)
                _pool = p
    return _pool


def close_pool() -> None:
    """Close the pool (graceful shutdown, tests)."""
    global _pool
    with _lock:
        if _pool is not None:
            _pool.close()
            _pool = None


def translate(exc: psycopg.Error) -> AttuneError:
    """Map a database error to the domain error the API reports (the one place it happens)."""
    diag = exc.diag
    detail = diag.message_detail or diag.message_primary or str(exc)
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return Conflict(f"already exists: {detail}")
    if isinstance(exc, psycopg.errors.ForeignKeyViolation):
        return Unprocessable(f"refers to something that does not exist: {detail}")
    if isinstance(exc, psycopg.errors.CheckViolation | psycopg.errors.NotNullViolation):
        return ValidationFailed(f"invalid value: {diag.message_primary or exc}")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return Forbidden(diag.message_primary or "not allowed")
    if isinstance(exc, psycopg.DataError):
        # Out-of-range numbers, NUL bytes in text, untranslatable characters: all bad input.
        return ValidationFailed(f"invalid value: {diag.message_primary or exc}")
    if isinstance(exc, psycopg.OperationalError):
        return ServiceUnavailable("database unavailable, retry later")
    return AttuneError(f"database error: {diag.message_primary or exc}")


@contextmanager
def _transaction(setting_sql: str, params: tuple[Any, ...]) -> Iterator[Cursor]:
    try:
        with pool().connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(setting_sql, params)
            yield cur
    except psycopg.Error as exc:
        raise translate(exc) from exc


@contextmanager
def tenant_tx(tenant_id: int) -> Iterator[Cursor]:
    """A transaction in which row-level security admits only `tenant_id`'s rows (and system rows for reading)."""
    with _transaction(SET_TENANT, (str(tenant_id),)) as cur:
        yield cur


@contextmanager
def system_tx() -> Iterator[Cursor]:
    """A transaction for system work across tenants; every query in it must filter by tenant itself."""
    with _transaction(SET_BYPASS, ()) as cur:
        yield cur

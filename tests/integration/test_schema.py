"""The migrations, applied in order, produce exactly the declared schema (chalicelib/db/schema.sql)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from chalicelib.db.migrate import apply_migrations, declared_schema, migrations
from tests.conftest import _with_dbname

CATALOG = {
    "columns": """
        SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity
        FROM information_schema.columns WHERE table_schema = 'attune' ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'attune'::regnamespace ORDER BY 1, 2""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'attune' ORDER BY 1, 2",
    "policies": """
        SELECT tablename, policyname, cmd, roles::text, qual, with_check
        FROM pg_policies WHERE schemaname = 'attune' ORDER BY 1, 2""",
    "rls": """
        SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class
        WHERE relnamespace = 'attune'::regnamespace AND relkind = 'r' ORDER BY 1""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
        WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE 'attune.%' ORDER BY 1, 2""",
    "functions": """
        SELECT proname, pg_get_functiondef(oid) FROM pg_proc
        WHERE pronamespace = 'attune'::regnamespace ORDER BY 1""",
    "grants": """
        SELECT table_name, privilege_type FROM information_schema.role_table_grants
        WHERE table_schema = 'attune' AND grantee = 'attune_app' ORDER BY 1, 2""",
}


def _snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(query).fetchall() for name, query in CATALOG.items()}  # type: ignore[arg-type]


@pytest.fixture
def two_empty_dbs(pg_server_url: str) -> Iterator[tuple[str, str]]:
    names = [f"attune_schema_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_dbname(pg_server_url, names[0]), _with_dbname(pg_server_url, names[1])
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_produce_declared_schema(two_empty_dbs: tuple[str, str]) -> None:
    migrated, declared = two_empty_dbs
    # GIVEN one database built by the migrations and one by schema.sql
    apply_migrations(migrated)
    with psycopg.connect(declared, autocommit=True) as conn:
        conn.execute(declared_schema().encode())
    # THEN their catalogs are the same, object by object
    got, want = _snapshot(migrated), _snapshot(declared)
    for part in CATALOG:
        assert got[part] == want[part], f"{part} differ between migrations and schema.sql"
    assert len(got["columns"]) > 50 and got["policies"], "snapshot is not empty"


def test_migrations_are_recorded_and_idempotent(two_empty_dbs: tuple[str, str]) -> None:
    url, _ = two_empty_dbs
    assert apply_migrations(url) == [name for _, name, _ in migrations()]
    assert apply_migrations(url) == []

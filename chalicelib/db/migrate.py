"""Applies `migrations/*.sql` in order, once each, under an advisory lock.

Every role of the local cloud calls this at start, so the lock makes
concurrent starts safe; the migration table lives outside the `attune` schema
so that the schema test compares only what the migrations declare.
"""

from __future__ import annotations

import re
from importlib import resources

import psycopg

MIGRATION_LOCK = 0x617474756E65  # "attune"
CREATE_META = """
CREATE SCHEMA IF NOT EXISTS attune_meta;
CREATE TABLE IF NOT EXISTS attune_meta.schema_migration (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied timestamptz NOT NULL DEFAULT now()
)
"""
APPLIED_VERSIONS = "SELECT version FROM attune_meta.schema_migration"
RECORD_VERSION = "INSERT INTO attune_meta.schema_migration (version, name) VALUES (%s, %s)"
LOCK = "SELECT pg_advisory_lock(%s)"
UNLOCK = "SELECT pg_advisory_unlock(%s)"

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """The packaged migrations as (version, file name, SQL), in version order."""
    found = []
    for entry in resources.files("chalicelib.db.migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def declared_schema() -> str:
    """The full schema the migrations must produce."""
    return resources.files("chalicelib.db").joinpath("schema.sql").read_text(encoding="utf-8")


def apply_migrations(url: str) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    applied: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(LOCK, (MIGRATION_LOCK,))
        try:
            conn.execute(CREATE_META)
            done = {row[0] for row in conn.execute(APPLIED_VERSIONS).fetchall()}
            for version, name, sql in migrations():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode("utf-8"))
                    conn.execute(RECORD_VERSION, (version, name))
                applied.append(name)
        finally:
            conn.execute(UNLOCK, (MIGRATION_LOCK,))
    return applied

"""Shared fixtures: a real PostgreSQL (embedded, or ATTUNE_DATABASE_URL), moto's server.

Integration tests get a fresh database cloned from a migrated template per
test (fast: a file copy inside PostgreSQL), and one moto server per session
provisioned from infra/template.yaml.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DB = "attune_test_template"


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_dbname(url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A PostgreSQL server URL: ATTUNE_TEST_DATABASE_URL's, or an embedded one for the session."""
    given = os.environ.get("ATTUNE_TEST_DATABASE_URL")
    if given:
        yield given
        return
    import pgserver

    tmp = tempfile.mkdtemp(prefix="attune-test-pg-")
    srv = pgserver.get_server(tmp, cleanup_mode="delete")
    try:
        yield srv.get_uri()
    finally:
        srv.cleanup()


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> str:
    """A migrated database that per-test databases are cloned from."""
    from chalicelib.db.migrate import apply_migrations

    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    url = _with_dbname(pg_server_url, TEMPLATE_DB)
    apply_migrations(url)
    return url


@pytest.fixture
def fresh_db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A database of its own for one test, cloned from the template."""
    name = f"attune_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    try:
        yield _with_dbname(pg_server_url, name)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server for the session, provisioned from infra/template.yaml."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    _reset_process_caches()
    from chalicelib.local.provision import provision

    provision()
    try:
        yield endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _reset_process_caches()


def _reset_process_caches() -> None:
    from chalicelib.aws import clients, secrets
    from chalicelib.config import settings
    from chalicelib.db.pool import close_pool

    settings.cache_clear()
    clients.reset_clients()
    secrets._cache.clear()
    close_pool()


@pytest.fixture
def db(fresh_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point this process's pool at a fresh database."""
    monkeypatch.setenv("ATTUNE_DATABASE_URL", fresh_db_url)
    _reset_process_caches()
    yield fresh_db_url
    _reset_process_caches()


@pytest.fixture
def cloud(db: str, moto_endpoint: str) -> dict[str, Any]:
    """A fresh database plus the session's moto server: what the API needs in-process."""
    return {"database_url": db, "aws_endpoint_url": moto_endpoint}


@pytest.fixture
def api(cloud: dict[str, Any]) -> Iterator[Any]:
    """Chalice's test client over the real app, a fresh database and moto."""
    from chalice.test import Client

    from app import app as chalice_app
    from chalicelib.packs.bootstrap import load_system_packs

    load_system_packs()
    with Client(chalice_app) as client:
        yield client

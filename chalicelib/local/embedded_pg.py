"""The embedded PostgreSQL of the local cloud, from the `pgserver` wheel.

Data lives under `<data_dir>/pgdata`, so what a developer created survives the
next `make run`. pgserver starts the server with `pg_ctl` (detached from our
terminal, so Ctrl-C reaches the supervisor first and PostgreSQL stops last)
and, when run as root as on CI, runs it as its own unprivileged user.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg

with warnings.catch_warnings():
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI, containers); harmless.
    warnings.simplefilter("ignore")
    from pgserver.postgres_server import PostgresServer, get_server

log = logging.getLogger(__name__)

DATABASE = "attune"
DATABASE_EXISTS = "SELECT 1 FROM pg_database WHERE datname = %s"
CREATE_DATABASE = "CREATE DATABASE attune"


@dataclass
class EmbeddedPostgres:
    """A running embedded server and the URL of the `attune` database in it."""

    server: PostgresServer
    url: str
    pid: int | None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server; also when pgserver thinks another (dead) handle still uses it."""
        self.server.cleanup()
        if self.pid is None or not psutil.pid_exists(self.pid):
            return
        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return
            log.info("stopping PostgreSQL (pid %s) left running by a stale handle", self.pid)
            os.kill(self.pid, signal.SIGINT)  # fast shutdown
            proc.wait(timeout)
        except psutil.NoSuchProcess:
            return
        except psutil.TimeoutExpired:
            log.warning("PostgreSQL did not stop in %.0fs; killing it", timeout)
            os.kill(self.pid, signal.SIGKILL)


def _ensure_database(server_url: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        if conn.execute(DATABASE_EXISTS, (DATABASE,)).fetchone() is None:
            conn.execute(CREATE_DATABASE)


def start(data_dir: Path) -> EmbeddedPostgres:
    """Start (or join) the server for `data_dir` and return the `attune` database's URL."""
    pgdata = (data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = get_server(pgdata, cleanup_mode="stop")
    _ensure_database(server.get_uri())
    url = server.get_uri(DATABASE)
    log.info("PostgreSQL ready in %.1fs (%s)", time.monotonic() - started, pgdata)
    return EmbeddedPostgres(server=server, url=url, pid=server.get_pid())


def restart(pg: EmbeddedPostgres) -> EmbeddedPostgres:
    """Start the server of `pg` again after it died (SIGKILL, OOM): same data dir, socket and URL.

    pgserver keeps one handle per data dir in the process, so `start()` would
    hand back the dead one; `ensure_postgres_running` reads postmaster.pid,
    sees no live server and runs pg_ctl again.
    """
    pg.server.ensure_postgres_running()
    _ensure_database(pg.server.get_uri())
    return EmbeddedPostgres(server=pg.server, url=pg.server.get_uri(DATABASE), pid=pg.server.get_pid())

"""The e2e tests drive the real local cloud (`attune dev`) over HTTP.

One cloud per session, started exactly as `make run` starts it, on a fresh
data directory (a developer's `.attune/` is untouched). Set ATTUNE_E2E_URL
(and ATTUNE_E2E_DATABASE_URL for at-rest checks) to run the suite against a
cloud that is already running.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from chalicelib.local.harness import running_cloud
from tests.e2e.client import Cloud


@cache
def _watch_dir() -> Path:
    """The host directory the cloud's sensors may read (T3.6): readable by the sandbox's own uids."""
    given = os.environ.get("ATTUNE_E2E_SENSOR_WATCH_DIR")
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="attune-e2e-watch-"))
    if not given:
        path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def sensor_watch_dir() -> Path:
    """Where T3.6 writes the file its sensor watches; set ATTUNE_E2E_SENSOR_WATCH_DIR for an outside cloud."""
    if os.environ.get("ATTUNE_E2E_URL") and not os.environ.get("ATTUNE_E2E_SENSOR_WATCH_DIR"):
        pytest.skip("an outside cloud: set ATTUNE_E2E_SENSOR_WATCH_DIR to a directory its sensors may read")
    return _watch_dir()


@pytest.fixture(scope="session")
def cloud() -> Iterator[Cloud]:
    """The running local cloud: its API URL and, for at-rest checks, its database URL."""
    given = os.environ.get("ATTUNE_E2E_URL")
    if given:
        ws_url = os.environ.get("ATTUNE_E2E_WS_URL") or f"ws://127.0.0.1:{os.environ.get('ATTUNE_WS_PORT', '18081')}"
        yield Cloud(given.rstrip("/"), os.environ.get("ATTUNE_E2E_DATABASE_URL"), ws_url=ws_url)
        return
    try:
        # The tests' own mock servers listen on loopback, which the HTTP runner refuses by default.
        # T3.29's 10 requests/s per user. Admins are exempt, and every other e2e user makes a
        # few calls, never 10 in a second: keep it so (poll as an admin) or T3.29's limit bites.
        limits = {"ATTUNE_RATE_LIMIT_PER_S": "10", "ATTUNE_RATE_LIMIT_BURST": "10"}
        # T3.6: sensors may read this one directory (every tenant's: e2e tenants are made per test).
        sensors = {"ATTUNE_SENSOR_WATCH_DIRS": f"*={_watch_dir()}"}
        with running_cloud(extra_env={"ATTUNE_HTTP_ALLOW_PRIVATE": "true", **limits, **sensors}) as running:
            ws_url = json.loads((running.data_dir / "cloud.json").read_text()).get("ws_url")
            yield Cloud(running.url, running.database_url, log_path=running.log_path, ws_url=ws_url)
    except RuntimeError as exc:
        pytest.fail(str(exc))

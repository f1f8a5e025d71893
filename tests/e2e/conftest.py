"""The e2e tests drive the real local cloud (`attune dev`) over HTTP.

One cloud per session, started exactly as `make run` starts it, on a fresh
data directory (a developer's `.attune/` is untouched). Set ATTUNE_E2E_URL
(and ATTUNE_E2E_DATABASE_URL for at-rest checks) to run the suite against a
cloud that is already running. `python -m tests.e2e.run` (make test, make e2e)
starts one cloud for several pytest-xdist workers and hands it to them
(tests/e2e/cloud_env.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.local.harness import running_cloud
from tests.e2e.client import Cloud
from tests.e2e.cloud_env import SharedCloud, cloud_env, watch_dir


@pytest.fixture(scope="session")
def sensor_watch_dir() -> Path:
    """Where T3.6 writes the file its sensor watches; set ATTUNE_E2E_SENSOR_WATCH_DIR for an outside cloud."""
    shared = SharedCloud.given()
    if shared is not None:
        return Path(shared.watch_dir)
    if os.environ.get("ATTUNE_E2E_URL") and not os.environ.get("ATTUNE_E2E_SENSOR_WATCH_DIR"):
        pytest.skip("an outside cloud: set ATTUNE_E2E_SENSOR_WATCH_DIR to a directory its sensors may read")
    return watch_dir()


@pytest.fixture(scope="session")
def cloud() -> Iterator[Cloud]:
    """The running local cloud: its API URL and, for at-rest checks, its database URL."""
    shared = SharedCloud.given()
    if shared is not None:
        yield Cloud(shared.url, shared.database_url, log_path=Path(shared.log_path), ws_url=shared.ws_url)
        return
    given = os.environ.get("ATTUNE_E2E_URL")
    if given:
        ws_url = os.environ.get("ATTUNE_E2E_WS_URL") or f"ws://127.0.0.1:{os.environ.get('ATTUNE_WS_PORT', '18081')}"
        yield Cloud(given.rstrip("/"), os.environ.get("ATTUNE_E2E_DATABASE_URL"), ws_url=ws_url)
        return
    try:
        with running_cloud(extra_env=cloud_env()) as running:
            ws_url = json.loads((running.data_dir / "cloud.json").read_text()).get("ws_url")
            yield Cloud(running.url, running.database_url, log_path=running.log_path, ws_url=ws_url)
    except RuntimeError as exc:
        pytest.fail(str(exc))

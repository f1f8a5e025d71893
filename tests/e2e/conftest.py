"""The e2e tests drive the real local cloud (`attune dev`) over HTTP.

One cloud per session, started exactly as `make run` starts it, on a fresh
data directory (a developer's `.attune/` is untouched). Set ATTUNE_E2E_URL
(and ATTUNE_E2E_DATABASE_URL for at-rest checks) to run the suite against a
cloud that is already running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from chalicelib.local.harness import running_cloud
from tests.e2e.client import Cloud


@pytest.fixture(scope="session")
def cloud() -> Iterator[Cloud]:
    """The running local cloud: its API URL and, for at-rest checks, its database URL."""
    given = os.environ.get("ATTUNE_E2E_URL")
    if given:
        yield Cloud(given.rstrip("/"), os.environ.get("ATTUNE_E2E_DATABASE_URL"))
        return
    try:
        # The tests' own mock servers listen on loopback, which the HTTP runner refuses by default.
        with running_cloud(extra_env={"ATTUNE_HTTP_ALLOW_PRIVATE": "true"}) as running:
            yield Cloud(running.url, running.database_url, log_path=running.log_path)
    except RuntimeError as exc:
        pytest.fail(str(exc))

"""How the e2e suite's cloud is started, and how a started one is handed to test processes.

One module for both: the `cloud` fixture (tests/e2e/conftest.py) starts a cloud
per pytest session, and `python -m tests.e2e.run` starts one for several
pytest-xdist workers and the serial tests after them; both must start it with
the same settings, or a test would pass one way and fail the other.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

# Where `python -m tests.e2e.run` writes the shared cloud's description for its test processes.
SHARED_CLOUD_VAR = "ATTUNE_E2E_CLOUD"


@cache
def watch_dir() -> Path:
    """The host directory the cloud's sensors may read (T3.6): readable by the sandbox's own uids."""
    given = os.environ.get("ATTUNE_E2E_SENSOR_WATCH_DIR")
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="attune-e2e-watch-"))
    if not given:
        path.chmod(0o755)
    return path


def cloud_env() -> dict[str, str]:
    """The settings the e2e cloud runs with, on top of `attune dev`'s defaults."""
    # The tests' own mock servers listen on loopback, which the HTTP runner refuses by default.
    # T3.29's 10 requests/s per user. Admins are exempt, and every other e2e user makes a
    # few calls, never 10 in a second: keep it so (poll as an admin) or T3.29's limit bites.
    limits = {"ATTUNE_RATE_LIMIT_PER_S": "10", "ATTUNE_RATE_LIMIT_BURST": "10"}
    # Every e2e test registers and logs in from 127.0.0.1, several at once and the OpenAPI conformance
    # test in bursts: the per-address /auth/* bucket (5/s, burst 50 by default) is one for them all.
    # Login throttling itself is tested with its defaults in tests/integration/test_rate_limits.py.
    limits |= {"ATTUNE_AUTH_RATE_LIMIT_PER_S": "100", "ATTUNE_AUTH_RATE_LIMIT_BURST": "1000"}
    # T3.6: sensors may read this one directory (every tenant's: e2e tenants are made per test).
    sensors = {"ATTUNE_SENSOR_WATCH_DIRS": f"*={watch_dir()}"}
    return {"ATTUNE_HTTP_ALLOW_PRIVATE": "true", **limits, **sensors}


@dataclass(frozen=True)
class SharedCloud:
    """A running cloud as test processes need it: where it answers, its database, its log and sensor dir."""

    url: str
    database_url: str | None
    log_path: str
    ws_url: str | None
    watch_dir: str

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @staticmethod
    def given() -> SharedCloud | None:
        """The cloud `python -m tests.e2e.run` started for this process, if it did."""
        path = os.environ.get(SHARED_CLOUD_VAR)
        return SharedCloud(**json.loads(Path(path).read_text())) if path else None

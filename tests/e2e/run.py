"""`make e2e` (and make test's e2e step): every e2e test against one local cloud, most of them in parallel.

Why: e2e tests are independent tenants on one running cloud, and most of
their time is spent waiting for it (timers, approvals, timeouts), so several
pytest-xdist workers can share one cloud and the suite takes a fraction of
the time. Tests marked `serial` run after them, alone, on the same cloud:
those that kill or stop the cloud's roles (crash and shutdown tests), and
those whose pass criterion is a timing tolerance or a request rate (timers,
timeouts, rate limits), which other tests' load must not blur.

    python -m tests.e2e.run [pytest args...]     # default: tests/e2e

ATTUNE_E2E_WORKERS (default 3) sets the parallel workers; 1 runs everything
serially (still on one cloud). Exit status: pytest's, the worse of the two runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from chalicelib.local.harness import running_cloud
from tests.e2e.cloud_env import SHARED_CLOUD_VAR, SharedCloud, cloud_env, watch_dir

NO_TESTS_COLLECTED = 5


def _pytest(args: list[str], env: dict[str, str]) -> int:
    code = subprocess.call([sys.executable, "-m", "pytest", *args], env=env)
    return 0 if code == NO_TESTS_COLLECTED else code


def main(argv: list[str]) -> int:
    """Start one cloud, run the parallel tests on it, then the serial ones; stop it."""
    targets = argv or ["tests/e2e"]
    workers = max(1, int(os.environ.get("ATTUNE_E2E_WORKERS", "3")))
    with running_cloud(extra_env=cloud_env()) as running:
        info = running.data_dir / "cloud.json"
        ws_url = json.loads(info.read_text()).get("ws_url") if info.exists() else None
        spec = Path(tempfile.mkdtemp(prefix="attune-e2e-")) / "cloud.json"
        SharedCloud(running.url, running.database_url, str(running.log_path), ws_url, str(watch_dir())).write(spec)
        env = {**os.environ, SHARED_CLOUD_VAR: str(spec)}
        parallel = ["-n", str(workers), "--dist", "loadfile"] if workers > 1 else []
        first = _pytest(["-q", "--durations=10", *parallel, "-m", "not serial", *targets], env)
        second = _pytest(["-q", "--durations=10", "-m", "serial", *targets], env)
    return max(first, second)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

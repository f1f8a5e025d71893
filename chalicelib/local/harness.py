"""Start a whole local cloud as a child process and wait until it is healthy.

The e2e tests and the benchmarks both need "the system as `make run` starts
it", on a throwaway data directory; this is that one piece of code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chalicelib.local.cloud import CREDENTIALS_FILE, health_ok
from chalicelib.local.moto_server import free_port


@dataclass(frozen=True)
class RunningCloud:
    """Where a started cloud answers, and what it published about itself in cloud.json."""

    url: str
    database_url: str | None
    aws_endpoint_url: str | None
    data_dir: Path
    log_path: Path
    # The platform's key for the cloud's own moto (which refuses any other), for tools and
    # benchmarks that read its queues; None when the cloud uses an outside endpoint.
    aws_credentials: dict[str, str] | None = None

    def boto3_kwargs(self) -> dict[str, str]:
        """`endpoint_url` and the platform's key, for a boto3 client of this cloud's moto."""
        if self.aws_endpoint_url is None:
            return {}
        creds = self.aws_credentials or {}
        return {"endpoint_url": self.aws_endpoint_url,
                "aws_access_key_id": creds.get("AWS_ACCESS_KEY_ID", ""),
                "aws_secret_access_key": creds.get("AWS_SECRET_ACCESS_KEY", "")}


def _tail(path: Path, lines: int = 80) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def running_cloud(
    deadline_s: float = 120, extra_env: dict[str, str] | None = None, data_dir: Path | None = None
) -> Iterator[RunningCloud]:
    """`attune dev` on a fresh (or the given) data directory; stopped with SIGTERM (then SIGKILL) on exit."""
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="attune-cloud-"))
    log_path = data_dir / "cloud.log"
    env = {**os.environ, "ATTUNE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    for var in ("ATTUNE_DATABASE_URL", "AWS_ENDPOINT_URL"):
        if var not in (extra_env or {}):
            env.pop(var, None)
    if "ATTUNE_MOTO_PORT" not in env:
        # A throwaway cloud must not take 18082 from a developer's `make run`.
        env["ATTUNE_MOTO_PORT"] = str(free_port())
    port = int(env.get("ATTUNE_API_PORT", "18080"))
    url = f"http://127.0.0.1:{port}"
    if health_ok(f"{url}/health"):
        raise RuntimeError(f"something already answers on {url}; stop it or set ATTUNE_API_PORT")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.cli", "dev"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        end = time.monotonic() + deadline_s
        while not health_ok(f"{url}/health"):
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"local cloud did not become healthy within {deadline_s}s:\n{_tail(log_path)}")
            time.sleep(0.2)
        info_path = data_dir / "cloud.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        creds_path = data_dir / "run" / CREDENTIALS_FILE
        creds = json.loads(creds_path.read_text()) if creds_path.exists() else None
        yield RunningCloud(url, info.get("database_url"), info.get("aws_endpoint_url"), data_dir, log_path,
                           creds)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

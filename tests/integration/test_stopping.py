"""Stopping always works: SIGTERM or SIGINT at any moment stops a process, and `attune dev` leaves nothing behind."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

# The main thread lives inside Event.wait() on the very Event the signal must set: with a handler
# that calls set() this deadlocks now and then (issue 10); with watch_signals it never may.
WAITER = """
import sys, threading
from chalicelib.stopping import watch_signals
stop = threading.Event()
watch_signals(lambda signum: stop.set())
print("ready", flush=True)
while not stop.wait(0.0005):
    pass
sys.exit(0)
"""


def test_fifty_signals_at_random_moments_each_stop_the_process() -> None:
    rng = random.Random(1234)
    for cycle in range(50):
        proc = subprocess.Popen([sys.executable, "-c", WAITER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.02))  # a random moment of the wait loop, not a wait for the system
        proc.send_signal(rng.choice([signal.SIGTERM, signal.SIGINT]))
        try:
            assert proc.wait(timeout=5) == 0, f"cycle {cycle}: exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"cycle {cycle}: the process did not stop within 5 s of the signal (deadlock)")


def _cloud_processes(data_dir: Path) -> list[psutil.Process]:
    """Every process that belongs to the cloud of `data_dir` (roles, moto, PostgreSQL)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            text = " ".join(proc.info["cmdline"] or [])
            env = proc.info["environ"] or {}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if str(data_dir) in text or env.get("ATTUNE_DATA_DIR") == str(data_dir):
            found.append(proc)
    return found


def test_attune_dev_stops_at_any_moment_and_leaves_nothing_running() -> None:
    rng = random.Random(42)
    for cycle in range(4):
        data_dir = Path(tempfile.mkdtemp(prefix="attune-stop-"))
        api_port, ws_port, moto_port = free_port(), free_port(), free_port()
        env = {**os.environ, "ATTUNE_DATA_DIR": str(data_dir), "ATTUNE_API_PORT": str(api_port),
               "ATTUNE_WS_PORT": str(ws_port), "ATTUNE_MOTO_PORT": str(moto_port), "PYTHONUNBUFFERED": "1"}
        for var in ("ATTUNE_DATABASE_URL", "AWS_ENDPOINT_URL"):
            env.pop(var, None)
        with open(data_dir / "cloud.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "dev"], cwd=ROOT, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        # WHEN a signal arrives at a random moment of start-up or of serving
        time.sleep(rng.uniform(0.5, 9.0))
        info_path = data_dir / "cloud.json"
        postgres_pid = json.loads(info_path.read_text()).get("postgres_pid") if info_path.exists() else None
        proc.send_signal(rng.choice([signal.SIGTERM, signal.SIGINT]))
        # THEN it exits within the roles' grace (60 s for the worker) ...
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"cycle {cycle}: attune dev did not stop; log {data_dir / 'cloud.log'}")
        # ... AND nothing of it is left: no role, no moto, no PostgreSQL (not even as an orphan of PID 1)
        deadline = time.monotonic() + 15
        while (left := _cloud_processes(data_dir)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"cycle {cycle}: left running {[(p.pid, p.name()) for p in left]}"
        if postgres_pid:
            assert not psutil.pid_exists(postgres_pid) or psutil.Process(postgres_pid).status() == "zombie"

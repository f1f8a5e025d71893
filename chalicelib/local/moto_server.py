"""moto's server as a child process of the local cloud, with Step Functions execution on.

A child process (not a thread) so that its werkzeug server, its global
backends and its own signal handling never mix with the supervisor's, and so
that `ps` shows exactly what runs. The child is this module run with
`python -m chalicelib.local.moto_server`: it starts moto's own `main()` plus a
watchdog that ends it if the parent dies without stopping it, so a killed
supervisor never leaves an emulator behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

DEFAULT_PORT = 18082
HOST = "127.0.0.1"
SFN_CONFIG = {"stepfunctions": {"execute_state_machine": True}}


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether `port` can be bound now (checked before starting, for a clear error)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """A port the OS says is free, for a second cloud or a test's emulator."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def choose_port() -> int:
    """`ATTUNE_MOTO_PORT` if set (must be free), else 18082, else any free port."""
    raw = os.environ.get("ATTUNE_MOTO_PORT")
    if raw:
        port = int(raw)
        if not port_is_free(port):
            raise RuntimeError(f"ATTUNE_MOTO_PORT={port} is already in use")
        return port
    return DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/config", timeout=2):  # noqa: S310
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def enable_step_functions_execution(url: str) -> None:
    """Switch moto from recording executions to running their ASL (off by default)."""
    req = urllib.request.Request(  # noqa: S310 - a local http URL we built
        f"{url}/moto-api/config",
        data=json.dumps(SFN_CONFIG).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        if resp.status not in (200, 201):
            raise RuntimeError(f"moto refused its config: HTTP {resp.status}")


@dataclass
class MotoServer:
    """A running moto child; `stop()` ends it and waits for it."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """The endpoint every boto3 client of the local cloud uses."""
        return f"http://{HOST}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (moto exits 0 on it), then SIGKILL if it hangs."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("moto did not stop in %.0fs; killing it", timeout)
            self.process.kill()
            self.process.wait(5)


def start(
    port: int | None = None,
    *,
    log_file: IO[bytes] | None = None,
    timeout: float = 30.0,
    state_dir: Path | None = None,
    kept_buckets: Sequence[str] = (),
) -> MotoServer:
    """Start moto on `port` (see `choose_port`), wait until it answers, enable Step Functions.

    With `state_dir`, the KMS keys and the objects of `kept_buckets` survive
    restarts (see `moto_state`), so encrypted data in a persistent local database
    stays readable and the pack files it names stay downloadable.
    """
    port = port or choose_port()
    env = dict(os.environ, MOTO_PORT=str(port))
    env.pop("AWS_ENDPOINT_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.local.moto_server",
         "--port", str(port), "--parent", str(os.getpid()),
         *(["--state-dir", str(state_dir)] if state_dir else []),
         *(arg for bucket in kept_buckets for arg in ("--keep-bucket", bucket))],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = MotoServer(port=port, process=process)
    deadline = time.monotonic() + timeout
    while not _answers(server.url):
        if process.poll() is not None:
            raise RuntimeError(f"moto exited with code {process.returncode} before answering")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"moto did not answer on port {port} within {timeout:.0f}s")
        time.sleep(0.05)
    try:
        enable_step_functions_execution(server.url)
    except (OSError, RuntimeError):
        server.stop()
        raise
    return server


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def main(argv: list[str] | None = None) -> None:
    """Child entry point: moto's server plus the parent watchdog."""
    parser = argparse.ArgumentParser(prog="python -m chalicelib.local.moto_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parent", type=int, default=0)
    parser.add_argument("--state-dir", default=None,
                        help="keep KMS keys (and the --keep-bucket objects) across restarts in this folder")
    parser.add_argument("--keep-bucket", action="append", default=[],
                        help="mirror this S3 bucket's objects under --state-dir (repeatable)")
    args = parser.parse_args(argv)
    # One line per request (long polls included) would drown the useful output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if args.parent:
        threading.Thread(target=_watch_parent, args=(args.parent,), daemon=True).start()
    if args.state_dir:
        from chalicelib.local import moto_state

        moto_state.keep(Path(args.state_dir) / "moto-kms.json")
        if args.keep_bucket:
            moto_state.keep_s3(Path(args.state_dir) / moto_state.S3_DIR_NAME, args.keep_bucket)
    from moto.server import main as moto_main

    moto_main(["-p", str(args.port), "-H", HOST])


if __name__ == "__main__":
    main()


"""Keeps one process per role running, with prefixed logs, restarts and a clean stop.

Each role runs in its own session, forked from the role template (a
pre-imported interpreter, chalicelib/local/role_template.py: a role starts
in milliseconds and shares the imported code's memory with its siblings),
or as `python -m chalicelib.local.role <name>` while there is no template
ready (it died, or is still importing). Ctrl-C in the terminal reaches only the supervisor, which then stops the
roles in order: SIGTERM to each, a grace period for in-flight work, SIGKILL
to the role's whole process group for what is left. A role that dies while
the cloud runs is restarted alone, with a backoff that grows while it keeps
dying quickly (a crash loop must not spin) and resets once it stays up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from chalicelib.local.role_template import RoleTemplate
from chalicelib.local.roles import Role

log = logging.getLogger(__name__)

STABLE_SECONDS = 30.0
# How long a role start waits for the template to finish importing before starting its own interpreter.
TEMPLATE_READY_WAIT_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 30.0
FIRST_BACKOFF_SECONDS = 0.5


def backoff(failures: int) -> float:
    """Delay before restart number `failures` of a role that keeps dying quickly."""
    return float(min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** max(0, failures - 1)))


class LogSink:
    """Serialises lines from many children onto one stream, each prefixed by its role."""

    def __init__(self, stream: IO[str], width: int) -> None:
        self._stream = stream
        self._width = width
        self._lock = threading.Lock()

    def line(self, source: str, text: str) -> None:
        """Write one line as `source | text`."""
        with self._lock:
            self._stream.write(f"{source:<{self._width}} | {text}\n")
            self._stream.flush()

    def pump(self, source: str, pipe: IO[bytes]) -> None:
        """Copy a child's output until it closes (the child exited)."""
        for raw in iter(pipe.readline, b""):
            self.line(source, raw.decode("utf-8", "replace").rstrip("\n"))
        pipe.close()


class RoleHandle(Protocol):
    """What the supervisor needs of a role's process: Popen's own shape, so a forked role is handled alike."""

    pid: int
    stdout: IO[bytes] | None

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


@dataclass
class Child:
    """A role's current process and its restart bookkeeping."""

    role: Role
    process: RoleHandle | None = None
    started_at: float = 0.0
    failures: int = 0
    restarts: int = 0
    restart_at: float | None = None
    pumps: list[threading.Thread] = field(default_factory=list)


class Supervisor:
    """Starts, watches, restarts and stops the role processes."""

    def __init__(
        self,
        roles: list[Role],
        *,
        env: Mapping[str, str],
        cwd: Path,
        sink: LogSink,
        on_change: Callable[[dict[str, int]], None] | None = None,
        template: RoleTemplate | None = None,
    ) -> None:
        self.children = {role.name: Child(role) for role in roles}
        self._env = dict(env)
        self._cwd = cwd
        self._sink = sink
        self._on_change = on_change
        self._stopping = False
        self._template = template

    def pids(self) -> dict[str, int]:
        """Role -> pid of the running process (what tests kill to prove restarts)."""
        return {name: c.process.pid for name, c in self.children.items()
                if c.process is not None and c.process.poll() is None}

    def start_template(self, env: Mapping[str, str] | None = None) -> None:
        """Start importing the role template now (while the backends start); roles fork from it once ready."""
        if self._template is None or not self._template.alive():
            if self._template is not None:
                self._template.stop()
            self._template = RoleTemplate(env or self._env, self._cwd)

    def _start(self, child: Child) -> RoleHandle:
        """Fork the role from the template when it is ready, else start a fresh interpreter (and a new template)."""
        template = self._template
        if template is not None and template.wait_ready(TEMPLATE_READY_WAIT_SECONDS):
            try:
                return template.spawn(child.role.name, self._env, self._cwd)
            except OSError as exc:
                self._sink.line("attune", f"role {child.role.name}: {exc}; starting it as its own interpreter")
        if template is not None and not template.alive() and not self._stopping:
            self.start_template()
        return subprocess.Popen(
            [sys.executable, "-m", "chalicelib.local.role", child.role.name],
            env=self._env,
            cwd=self._cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _spawn(self, child: Child) -> None:
        process = self._start(child)
        assert process.stdout is not None
        pump = threading.Thread(target=self._sink.pump, args=(child.role.name, process.stdout),
                                name=f"log-{child.role.name}", daemon=True)
        pump.start()
        child.pumps = [t for t in child.pumps if t.is_alive()] + [pump]
        child.process, child.started_at, child.restart_at = process, time.monotonic(), None
        if self._on_change:
            self._on_change(self.pids())

    def start_all(self) -> None:
        """Start every role."""
        for child in self.children.values():
            self._spawn(child)

    def poll(self) -> None:
        """Notice exits and perform due restarts; call it often from the main loop."""
        if self._stopping:
            return
        now = time.monotonic()
        for name, child in self.children.items():
            if child.process is not None and child.process.poll() is not None:
                code = child.process.returncode
                ran = now - child.started_at
                child.failures = 1 if ran >= STABLE_SECONDS else child.failures + 1
                delay = backoff(child.failures)
                child.process, child.restart_at = None, now + delay
                self._sink.line("attune", f"role {name} exited with code {code} after {ran:.1f}s; "
                                          f"restarting in {delay:.1f}s")
                if self._on_change:
                    self._on_change(self.pids())
            elif child.process is None and child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._spawn(child)
                self._sink.line("attune", f"role {name} restarted (restart #{child.restarts}, "
                                          f"pid {child.process.pid if child.process else '?'})")

    def stop_all(self, force: threading.Event | None = None) -> None:
        """SIGTERM every role, wait out each one's grace, SIGKILL the leftovers' process groups."""
        self._stopping = True
        running = [c for c in self.children.values()
                   if c.process is not None and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        for child in running:
            assert child.process is not None
            while child.process.poll() is None:
                if (force is not None and force.is_set()) or \
                        time.monotonic() - started > child.role.stop_grace_seconds:
                    break
                time.sleep(0.05)
        for child in self.children.values():
            self._kill_group(child)
            for pump in child.pumps:
                pump.join(2.0)
        if self._template is not None:
            self._template.stop()

    def _kill_group(self, child: Child) -> None:
        process = child.process
        if process is None:
            return
        if process.poll() is None:
            self._sink.line("attune", f"role {child.role.name} ignored SIGTERM; killing it")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # the role's session: it and its children
        process.wait(5)


def write_cloud_file(path: Path, info: Mapping[str, object]) -> None:
    """Publish where the running cloud is (ports, endpoints, role pids) for tests and tools."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)

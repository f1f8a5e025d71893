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
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from chalicelib.local.roles import Role

log = logging.getLogger(__name__)

STABLE_SECONDS = 30.0
# How long a role start waits for the template to finish importing before starting its own interpreter.
TEMPLATE_READY_WAIT_SECONDS = 30.0
UNKNOWN_EXIT_CODE = 255  # a forked role whose template died before it: nobody could learn its code
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


class ForkedRole:
    """A role the template forked: its exit code comes from the template, which is its parent and reaps it.

    A pidfd (it names this very process, whoever reaps it) says when it is
    gone should the template die first: the role is then init's, its code lost.
    """

    def __init__(self, pid: int, stdout: IO[bytes], template: RoleTemplate) -> None:
        self.pid, self._template = pid, template
        self.stdout: IO[bytes] | None = stdout
        self._code: int | None = None
        self._reported = threading.Event()
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except OSError:  # already gone (and reaped): the template's report tells the code
            self._pidfd = None

    @property
    def returncode(self) -> int | None:
        return self._code

    def reported(self, code: int) -> None:
        """The template reaped it (on the template's reader thread)."""
        if self._code is None:
            self._code = code
        self._reported.set()
        self._close_pidfd()

    def _close_pidfd(self) -> None:
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def poll(self) -> int | None:
        if self._code is None and not self._template.alive() and self._gone():
            self._code = UNKNOWN_EXIT_CODE
            self._reported.set()
        return self._code

    def _gone(self) -> bool:
        fd = self._pidfd
        return fd is None or bool(select.select([fd], [], [], 0)[0])

    def send_signal(self, sig: int) -> None:
        if self._code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(f"role pid {self.pid}", timeout or 0.0)
            self._reported.wait(0.05 if left is None else min(0.05, left))
        assert self._code is not None
        return self._code


class RoleTemplate:
    """The supervisor's end of a role template process: start it, ask it for roles, hear of their exits."""

    def __init__(self, env: Mapping[str, str], cwd: Path, sink: LogSink) -> None:
        ours, theirs = socket.socketpair()
        self._sink = sink
        self._lock = threading.Lock()  # one request at a time: its answer is the next `pid` line
        self._answers: list[dict[str, Any]] = []
        self._answered = threading.Condition()
        self._roles: dict[int, ForkedRole] = {}
        self._early: dict[int, int] = {}  # exits reported before the spawn's handle existed
        self.ready = threading.Event()
        self._dead = threading.Event()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chalicelib.local.role_template", str(theirs.fileno())],
                env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, pass_fds=[theirs.fileno()],
                start_new_session=True,
            )
        finally:
            theirs.close()
        self._socket = ours
        self._reader = threading.Thread(target=self._read, name="role-template", daemon=True)
        self._reader.start()

    def alive(self) -> bool:
        return not self._dead.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Whether it is ready within `timeout`; False at once if it died importing."""
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.05):
            if not self.alive() or time.monotonic() >= deadline:
                return False
        return self.alive()

    def _read(self) -> None:
        buffer = b""
        try:
            while True:
                data = self._socket.recv(65536)
                if not data:
                    break
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self._handle(json.loads(line))
        except (OSError, ValueError) as exc:
            self._sink.line("attune", f"role template: {exc}")
        finally:
            self._dead.set()
            with self._answered:
                self._answered.notify_all()

    def _handle(self, doc: dict[str, Any]) -> None:
        if doc.get("ready"):
            if doc.get("failed"):
                self._sink.line("attune", f"role template could not import {', '.join(doc['failed'])}")
            self.ready.set()
        elif "exit" in doc:
            pid, code = int(doc["exit"]), int(doc["code"])
            with self._answered:
                role = self._roles.pop(pid, None)
                if role is None:
                    self._early[pid] = code
            if role is not None:
                role.reported(code)
        else:
            with self._answered:
                self._answers.append(doc)
                self._answered.notify_all()

    def spawn(self, role: str, env: Mapping[str, str], cwd: Path, timeout: float = 10.0) -> ForkedRole:
        """Fork `role` with `env`; OSError when the template cannot (the caller starts it the slow way)."""
        if not self.ready.is_set() or not self.alive():
            raise OSError("the role template is not ready")
        out_r, out_w = os.pipe()
        try:
            with self._lock:
                request = json.dumps({"role": role, "env": dict(env), "cwd": str(cwd)}).encode() + b"\n"
                self._socket.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                  out_w.to_bytes(4, sys.byteorder))])
                with self._answered:
                    if not self._answered.wait_for(lambda: self._answers or not self.alive(), timeout):
                        raise OSError("the role template did not answer")
                    if not self._answers:
                        raise OSError("the role template died")
                    answer = self._answers.pop(0)
                    if "pid" not in answer:
                        raise OSError(f"the role template refused: {answer.get('error')}")
                    pid = int(answer["pid"])
                    handle = ForkedRole(pid, os.fdopen(out_r, "rb", buffering=0), self)
                    self._roles[pid] = handle
                    early = self._early.pop(pid, None)
            out_r = -1
            if early is not None:
                handle.reported(early)
            return handle
        finally:
            os.close(out_w)
            if out_r >= 0:
                os.close(out_r)

    def stop(self) -> None:
        """Close the socket (the template exits at end of file) and reap it; twice is fine."""
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


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
            self._template = RoleTemplate(env or self._env, self._cwd, self._sink)

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

"""A pre-imported interpreter the supervisor forks role processes from: `python -m chalicelib.local.role_template FD`.

Why: every role used to be `python -m chalicelib.local.role NAME`, a fresh
interpreter importing boto3, psycopg, pydantic, Chalice and our own code:
about a second of CPU each, nine at once on a 2-core machine after the
backends were up (most of `make run`'s start-up), and 50-65 MB of private
memory each for the same code (the cloud's PSS was ~770 MB idle). The
template imports all of it once, while PostgreSQL and moto are still
starting, then `gc.freeze()`s it, and forks a role per request: a role
starts in milliseconds and shares those pages with its siblings until it
writes them.

Only imports happen here, never a setting read, a connection, a client or a
thread: a role learns its environment after the fork (the request carries
it; the database URL and the emulator's endpoint are not known when the
template starts), and every cache that an import may have filled is
emptied in the child before the role runs (`_forget_caches`).

The protocol, on a Unix stream socket the supervisor passed as FD: the
supervisor sends one JSON line `{"role", "env", "cwd"}` with the write end
of the role's output pipe attached (SCM_RIGHTS); the template answers
`{"pid": N}` (or `{"error": ...}`) and, when that role exits (it is the
template's child and reaped here), `{"exit": N, "code": C}` with C as Popen
reports it (negative: killed by that signal). End of file on the socket
means the supervisor is gone: the template exits, and the roles, whose
parent it was, notice it and stop (role.py's "the supervisor is gone").
"""

from __future__ import annotations

import contextlib
import gc
import importlib
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
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
UNKNOWN_EXIT_CODE = 255  # a forked role whose template died before it: nobody could learn its code
MAX_REQUEST_BYTES = 1024 * 1024
FD_SIZE = 4  # bytes of one descriptor in SCM_RIGHTS ancillary data
PR_SET_NAME = 15  # <linux/prctl.h>


# Our own sources, as the template and every other process of the cloud import them.
SOURCE_DIRS = ("chalicelib", "functions")
SOURCE_FILES = ("app.py",)


def compile_sources(root: Path = REPO_ROOT) -> None:
    """Write the bytecode of our own sources that is missing or stale, as pip does for installed packages.

    Why: under PYTHONDONTWRITEBYTECODE (set by many Docker images, and on
    this project's CI machines) Python never writes `__pycache__`, and an
    editable install has none, so the template, the emulator and the CLI
    each compiled every module they import at every start: 0.5-0.7 s of
    `make run`'s start-up to the first webhook, measured (paired, 4 rounds:
    median 3.67 -> 3.00 s). `compileall` writes regardless of the flag; when
    everything is fresh it only compares timestamps (~8 ms). A tree we may
    not write (a read-only install) is left as it is, silently.
    """
    import compileall

    for name in SOURCE_DIRS:
        if (root / name).is_dir():
            compileall.compile_dir(root / name, quiet=2)
    for name in SOURCE_FILES:
        if (root / name).is_file():
            compileall.compile_file(root / name, quiet=2)


def preload() -> list[str]:
    """Import what every role runs (their modules and their handlers'); the modules that failed, by name.

    A module that cannot be imported here is the role's to fail on in its own
    process (its traceback in its log), not the template's.
    """
    from chalicelib.local import role as _role  # noqa: F401 - the role runner itself
    from chalicelib.local.roles import ROLES

    failed: list[str] = []
    modules = {"app"}
    for role in ROLES.values():
        if role.main:
            modules.add(role.main.split(":", 1)[0])
        for binding in role.queues:
            modules.add(binding.handler.rsplit(".", 1)[0])
    for name in sorted(modules):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - reported back; the role itself will show why
            failed.append(name)
    try:
        from chalicelib.aws.clients import preload_models

        preload_models()
    except Exception:  # noqa: BLE001 - an optimisation: each role parses its own models then
        failed.append("botocore models")
    return failed


def _forget_caches() -> None:
    """Empty every functools cache of our modules: what an import memoised predates the role's environment."""
    for name, module in list(sys.modules.items()):
        if not (name.startswith("chalicelib") or name.startswith("functions") or name == "app"):
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear) and hasattr(value, "cache_info"):  # functools.lru_cache / cache wrappers
                clear()


def _name_process(name: str) -> None:
    """What `ps -o comm`/`top` show (15 bytes): the role, not the template's command line that a fork keeps."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _child(request: dict[str, Any], out_fd: int, control: socket.socket) -> None:
    """In the forked child: become the role's own process, then run it; never returns."""
    code = 1
    try:
        control.close()
        os.setsid()  # the role's own session and group: the supervisor kills the group
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        for fd in (devnull, out_fd):
            if fd > 2:
                os.close(fd)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        os.chdir(str(request["cwd"]))
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})
        sys.argv = ["chalicelib.local.role", str(request["role"])]
        _name_process(f"attune-{request['role']}")
        _forget_caches()
        gc.unfreeze()
        from chalicelib.local import role

        call = request.get("call")  # a one-shot task (spawn's `call`) instead of a role
        code = role.run_task(str(call)) if call else role.run(str(request["role"]))
    except BaseException:  # noqa: BLE001 - whatever happened, this process must end here, not in the template's loop
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _send(control: socket.socket, doc: dict[str, Any]) -> None:
    control.sendall(json.dumps(doc).encode() + b"\n")


def _receive(control: socket.socket, buffer: bytearray) -> tuple[dict[str, Any], int | None] | None:
    """One request line and the descriptor that came with it; None at end of file."""
    fd: int | None = None
    while b"\n" not in buffer:
        data, ancillary, _flags, _addr = control.recvmsg(65536, socket.CMSG_SPACE(FD_SIZE))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = [int.from_bytes(payload[i:i + FD_SIZE], sys.byteorder)
                       for i in range(0, len(payload) - len(payload) % FD_SIZE, FD_SIZE)]
                for extra in fds[1:]:
                    os.close(extra)
                if fds:
                    if fd is not None:
                        os.close(fd)
                    fd = fds[0]
        if not data:
            if fd is not None:
                os.close(fd)
            return None
        buffer += data
        if len(buffer) > MAX_REQUEST_BYTES:
            raise ValueError("request too long")
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return json.loads(line), fd


def serve(control: socket.socket) -> int:
    """Answer spawn requests until the supervisor closes the socket; report each child's exit."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # the wake-up fd is what matters
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole terminal group: the supervisor decides
    buffer = bytearray()
    children: set[int] = set()
    while True:
        readable, _, _ = select.select([control.fileno(), wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 512)
        for pid in list(children):
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                _send(control, {"exit": pid, "code": os.waitstatus_to_exitcode(raw)})
        if control.fileno() not in readable:
            continue
        got = _receive(control, buffer)
        if got is None:
            return 0
        request, out_fd = got
        if out_fd is None:
            _send(control, {"error": "no output descriptor came with the request"})
            continue
        pid = os.fork()
        if pid == 0:
            _child(request, out_fd, control)
        os.close(out_fd)
        children.add(pid)
        _send(control, {"pid": pid})


def main(argv: list[str]) -> int:
    """Import, freeze, announce readiness (`{"ready": true, "failed": [...]}`), serve."""
    control = socket.socket(fileno=int(argv[1]))
    failed = preload()
    gc.collect()
    gc.freeze()  # what is imported now stays shared: the collector no longer touches (so copies) it
    _send(control, {"ready": True, "failed": failed})
    return serve(control)


# -- the supervisor's side ---------------------------------------------------------------------------------------
def role_env(base: Mapping[str, str]) -> dict[str, str]:
    """A role's environment: `base` with unbuffered output and the repository on the import path."""
    return dict(base, PYTHONUNBUFFERED="1",
                PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), base.get("PYTHONPATH")) if p))


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

    def __init__(self, env: Mapping[str, str], cwd: Path) -> None:
        ours, theirs = socket.socketpair()
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
            log.warning("role template: %s", exc)
        finally:
            self._dead.set()
            with self._answered:
                self._answered.notify_all()

    def _handle(self, doc: dict[str, Any]) -> None:
        if doc.get("ready"):
            if doc.get("failed"):
                log.warning("role template could not import %s", ", ".join(doc["failed"]))
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

    def spawn(self, role: str, env: Mapping[str, str], cwd: Path, timeout: float = 10.0,
              call: str | None = None) -> ForkedRole:
        """Fork `role` with `env` (or, with `call`, a one-shot `pkg.module:function` named `role`).

        OSError when the template cannot: the caller does it the slow way.
        """
        if not self.ready.is_set() or not self.alive():
            raise OSError("the role template is not ready")
        out_r, out_w = os.pipe()
        try:
            with self._lock:
                doc = {"role": role, "env": dict(env), "cwd": str(cwd), "call": call}
                request = json.dumps(doc).encode() + b"\n"
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


if __name__ == "__main__":
    sys.exit(main(sys.argv))

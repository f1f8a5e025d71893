"""Starting, watching and stopping one action process: the machinery every runner shares.

Written once so that python3 and shell (and later node) behave the same on
the hard parts: a process group per action, SIGTERM -> grace -> SIGKILL on
timeout or cancel, reaping, draining output pipes so the action never
blocks, and an environment built from scratch so that the worker's own
secrets (database URL, AWS credentials) never reach action code.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path

from chalicelib.core.errors import ValidationFailed
from chalicelib.runners.base import Outcome, RunRequest
from chalicelib.runners.launch import Launch, prepare
from chalicelib.runners.output import OutputBuffer
from chalicelib.runners.sandbox import (
    SDK_DIR,
    SDK_MOUNT,
    VENV_MOUNT,
    WORK_MOUNT,
    Sandbox,
    exit_code,
    python_prefixes,
    venv_dir,
)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Once the main process is gone, how long leftover pipe holders (processes that
# left the group with setsid) may keep us waiting for EOF.
DRAIN_AFTER_EXIT_S = 1.0
# How often a cancel Event is looked at (and exit, where pidfd is missing).
POLL_S = 0.05
# The context goes through a pipe written before the action starts, so it must
# fit in the pipe buffer (64 KiB on Linux).
MAX_CONTEXT_BYTES = 60 * 1024
_READ_CHUNK = 64 * 1024


def action_env(
    request: RunRequest, context_fd: int, home: Path | None = None, sdk: Path = SDK_DIR
) -> dict[str, str]:
    """The action's whole environment, built from nothing: no parameter, secret or worker setting.

    PATH comes from the worker (it says where tools are, e.g. Lambda's
    /var/lang/bin); HOME is the action's own work dir (the worker's home is
    not the action's, and in the sandbox it does not exist) and PYTHONPATH
    the SDK, both as the action sees them; everything else
    is fixed or names a number that is not a secret. PYTHONUNBUFFERED makes a
    Python action's prints reach us as they happen, so a timed-out or
    canceled execution keeps its partial output.
    """
    return {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "HOME": str(home) if home is not None else tempfile.gettempdir(),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(sdk),
        "PYTHONUNBUFFERED": "1",
        "ATTUNE_EXECUTION_ID": str(request.execution_id),
        "ATTUNE_CONTEXT_FD": str(context_fd),
    }


def _confined(
    command: list[str], sandbox: Sandbox, *, cwd: Path, env: dict[str, str], pack_dir: Path | None,
    python: str | None, mounts: Sequence[tuple[Path, Path]] = (),
) -> Launch:
    """The confined start of `command`: bwrap's options on a pipe, the limits handshake (launch.prepare).

    bwrap's options name host paths (the pack cache, the work dir), so they
    go through a pipe rather than onto a command line the action could read.
    A virtualenv interpreter is bound at VENV_MOUNT and named so in the argv:
    its host path is under the data dir.
    """
    if shutil.which(command[0], path=env.get("PATH")) is None:  # as Popen would say, not bwrap's exit 1
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), command[0])
    venv = venv_dir(python)
    extra = list(mounts)
    if venv is not None and python is not None:
        extra.append((venv, VENV_MOUNT))
        if command[0] == python:
            command = [str(VENV_MOUNT / Path(python).relative_to(venv)), *command[1:]]
    return prepare(sandbox, command, work_dir=cwd, env=env, pack_dir=pack_dir,
                   read_only=python_prefixes(python), mounts=extra)


def _spawn(
    command: list[str], sandbox: Sandbox | None, *, cwd: Path, env: dict[str, str], pack_dir: Path | None,
    python: str | None, mounts: Sequence[tuple[Path, Path]], child_fds: list[int],
) -> subprocess.Popen[bytes]:
    """Start the action (confined: bwrap, then its limits, then release it); `child_fds` are closed either way.

    A sandbox whose limits cannot be set is killed before anything of the
    action runs (SandboxStartFailed, an OSError, like any failed start).
    """
    launch: Launch | None = None
    try:
        if sandbox is not None:
            launch = _confined(command, sandbox, cwd=cwd, env=env, pack_dir=pack_dir, python=python, mounts=mounts)
            command = launch.argv
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            cwd=cwd,
            env=env,
            pass_fds=[*child_fds, *(launch.child_fds if launch is not None else ())],
            start_new_session=True,
        )
    except BaseException:
        if launch is not None:
            launch.close()
        raise
    finally:
        for fd in child_fds:
            os.close(fd)
    if launch is None:
        return proc
    try:
        launch.close_child_fds()
        launch.release()
    except BaseException:
        _killpg(proc.pid, signal.SIGKILL)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with suppress(OSError):
                    stream.close()
        proc.wait()
        raise
    finally:
        launch.close()
    return proc


def _context_pipe(request: RunRequest) -> int:
    """A pipe's read end holding the context document; the SDK reads it once, then it is gone."""
    doc = {**request.context, "execution_id": request.execution_id}
    data = json.dumps(doc, separators=(",", ":"), default=str).encode()
    if len(data) > MAX_CONTEXT_BYTES:
        raise ValidationFailed(f"the action context is {len(data)} bytes, over {MAX_CONTEXT_BYTES}")
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, data)  # fits in the pipe buffer: never blocks
    except OSError:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return read_fd


def _killpg(pgid: int, sig: signal.Signals) -> None:
    """Signal the action's whole group; a group that is already gone is fine."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _term_group(pgid: int, *, spare_leader: bool) -> None:
    """SIGTERM to the action's group; in the sandbox, to all of it but bwrap, the group's leader.

    bwrap dies of SIGTERM, and its death kills the whole sandbox at once
    (--die-with-parent), which would leave the action no grace period; the
    action and its children are bwrap's descendants in the same group.
    """
    if not spare_leader:
        _killpg(pgid, signal.SIGTERM)
        return
    for pid in _group_members(pgid):
        if pid != pgid:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)


def _group_members(pgid: int) -> list[int]:
    """The pids of process group `pgid`, read from /proc (once per timeout or cancel: cheap enough)."""
    found: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if len(fields) > 2 and fields[2] == str(pgid):
            found.append(int(entry.name))
    return found


def _exited(pid: int) -> bool:
    """Whether the child is dead, without reaping it (its zombie keeps the group id reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _pidfd(pid: int) -> int | None:
    """A descriptor that turns readable when the child exits (Linux 5.3+), so exit wakes the loop at once."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def run_process(
    request: RunRequest,
    argv: Callable[[int | None], Sequence[str]],
    *,
    cwd: Path,
    grace_s: float,
    channel: bool = False,
    cancel: threading.Event | None = None,
    on_started: Callable[[int], None] | None = None,
    sandbox: Sandbox | None = None,
    pack_dir: Path | None = None,
    python: str | None = None,
    mounts: Sequence[tuple[Path, Path]] = (),
    extra_env: Mapping[str, str] | None = None,
) -> Outcome:
    """Start the action, feed it its parameters, watch it to the end, and always reap it.

    `argv` gets the number of the result channel's write end (when `channel`),
    an extra pipe a wrapper can report a return value on without mixing it
    into the action's own stdout. With a `sandbox`, the action runs confined
    in `cwd` (its host work dir, WORK_MOUNT inside), seeing `pack_dir`
    (PACK_MOUNT), the SDK, the wrapper and `python`'s installation besides
    the runtime; `argv` must then name paths as the action sees them.
    """
    limit = request.max_output_bytes
    outcome = Outcome(None, OutputBuffer(limit), OutputBuffer(limit), OutputBuffer(limit) if channel else None)
    if cancel is not None and cancel.is_set():
        outcome.canceled = True
        return outcome
    try:
        stdin_data = json.dumps(request.parameters, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"the action's parameters are not JSON: {exc}") from exc
    context_fd = _context_pipe(request)
    chan_r, chan_w = os.pipe() if channel else (None, None)
    child_fds = [fd for fd in (context_fd, chan_w) if fd is not None]
    confined = sandbox is not None
    env = action_env(request, context_fd, home=WORK_MOUNT if confined else cwd, sdk=SDK_MOUNT if confined else SDK_DIR)
    env.update(extra_env or {})  # a runner's own (NODE_PATH), naming paths as the action sees them
    started = time.monotonic()
    try:
        proc = _spawn(list(argv(chan_w)), sandbox, cwd=cwd, env=env, pack_dir=pack_dir, python=python,
                      mounts=mounts, child_fds=child_fds)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:  # missing interpreter, NUL in a path
        outcome.spawn_error = f"could not start the action: {exc}"
        if chan_r is not None:
            os.close(chan_r)
        return outcome
    outcome.pid = proc.pid
    try:
        if on_started is not None:
            on_started(proc.pid)
        watch = _Watch(proc, outcome, stdin_data, chan_r, spare_leader=sandbox is not None)
        try:
            watch.watch(started + request.timeout_s, grace_s, cancel)
        finally:
            watch.close()
    finally:
        _killpg(proc.pid, signal.SIGKILL)  # no-op after a normal end; the cleanup if we were interrupted
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with suppress(OSError):
                    stream.close()
        if chan_r is not None:
            os.close(chan_r)
        raw = proc.wait()
        outcome.exit_code = exit_code(raw) if sandbox is not None else raw
        outcome.duration_s = time.monotonic() - started
    return outcome


class _Watch:
    """One thread, one selector: write stdin, drain every pipe, notice exit, deadline and cancel.

    Pipes are drained past the output limit (the surplus is dropped) so the
    action never blocks on a full pipe. When the main process is gone, what it
    left in its group is killed, then we read to EOF, bounded by a short drain
    deadline in case something escaped the group and still holds a pipe.
    """

    def __init__(
        self, proc: subprocess.Popen[bytes], outcome: Outcome, stdin_data: bytes, chan_r: int | None,
        *, spare_leader: bool = False,
    ) -> None:
        self.spare_leader = spare_leader
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self.proc, self.outcome, self.stdin = proc, outcome, proc.stdin
        self.sel = selectors.DefaultSelector()
        streams = [(proc.stdout.fileno(), outcome.stdout), (proc.stderr.fileno(), outcome.stderr)]
        if chan_r is not None and outcome.channel is not None:
            streams.append((chan_r, outcome.channel))
        for fd, buf in streams:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, buf)
        self.readers = len(streams)
        self.pending = memoryview(stdin_data)
        os.set_blocking(self.stdin.fileno(), False)
        self.sel.register(self.stdin.fileno(), selectors.EVENT_WRITE, None)
        self.pidfd = _pidfd(proc.pid)
        if self.pidfd is not None:
            self.sel.register(self.pidfd, selectors.EVENT_READ, "exit")
        self.exited = False
        self.term_at: float | None = None
        self.drain_until: float | None = None

    def close(self) -> None:
        """Release the selector and the pidfd (the pipes belong to run_process)."""
        self.sel.close()
        if self.pidfd is not None:
            os.close(self.pidfd)

    def watch(self, deadline: float, grace_s: float, cancel: threading.Event | None) -> None:
        """Loop until the process has exited and its pipes are drained."""
        while True:
            now = time.monotonic()
            if not self.exited and self.pidfd is None:
                self.exited = _exited(self.proc.pid)
            if self.exited:
                if self.drain_until is None:
                    _killpg(self.proc.pid, signal.SIGKILL)  # leftovers; the unreaped leader holds the pgid
                    self.drain_until = now + DRAIN_AFTER_EXIT_S
                if self.readers == 0 or now >= self.drain_until:
                    return
                wait: float | None = self.drain_until - now
            else:
                wait = self._stop_if_due(now, deadline, grace_s, cancel)
            for key, _events in self.sel.select(None if wait is None else max(0.0, wait)):
                self._handle(key)

    def _stop_if_due(self, now: float, deadline: float, grace_s: float, cancel: threading.Event | None) -> float | None:
        """SIGTERM on timeout or cancel, SIGKILL after the grace period; returns how long to wait."""
        outcome, waits = self.outcome, []
        if self.term_at is None:
            outcome.canceled = cancel is not None and cancel.is_set()
            outcome.timed_out = not outcome.canceled and now >= deadline
            if outcome.canceled or outcome.timed_out:
                self.term_at = now
                _term_group(self.proc.pid, spare_leader=self.spare_leader)
            else:
                waits.append(deadline - now)
                if cancel is not None:
                    waits.append(POLL_S)
        if self.term_at is not None and not outcome.killed:
            if now >= self.term_at + grace_s:
                outcome.killed = True
                _killpg(self.proc.pid, signal.SIGKILL)
            else:
                waits.append(self.term_at + grace_s - now)
        if self.pidfd is None:
            waits.append(POLL_S)
        return min(waits) if waits else None

    def _handle(self, key: selectors.SelectorKey) -> None:
        if key.data == "exit":
            self.exited = True
            self.sel.unregister(key.fd)
        elif key.data is None:
            self._feed_stdin()
        elif not _drain(key.fd, key.data):
            self.sel.unregister(key.fd)
            self.readers -= 1

    def _feed_stdin(self) -> None:
        """Write what the pipe takes now; close stdin when all is written or the action stopped reading."""
        try:
            written = os.write(self.stdin.fileno(), self.pending[:_READ_CHUNK])
        except BlockingIOError:
            return
        except OSError:  # EPIPE: the action exited or closed stdin without reading it all; its choice
            written = len(self.pending)
        self.pending = self.pending[written:]
        if not self.pending:
            self.sel.unregister(self.stdin.fileno())
            with suppress(OSError):
                self.stdin.close()


def _drain(fd: int, buf: OutputBuffer) -> bool:
    """Read what is there into the bounded buffer; False at EOF."""
    try:
        chunk = os.read(fd, _READ_CHUNK)
    except BlockingIOError:
        return True
    if not chunk:
        return False
    buf.feed(chunk)
    return True

"""Warm python3 and shell starts: one sandboxed fork server ("zygote") per (tenant, pack version, interpreter).

Why: a python3 action used to pay a whole interpreter start plus a bwrap
sandbox start per execution (bench/sandbox.py: ~24 ms CPU against ~9 ms for a
shell action). A zygote is started once, confined exactly as an action is
(process._confined: the same bwrap options, limits set with prlimit before
any of its code runs, setpriv to an unprivileged uid, an environment with no
secret), pre-imports what the wrapper needs and never imports or runs tenant
code itself; each execution is a child it forks (sdk/_attune_zygote.py, the
protocol). The child makes its own session (so its own process group), takes
the execution's descriptors, environment (process.action_env), work dir and
limits, and runs the wrapper's main as `python wrapper.py` would; a shell
action's child execs the script's interpreter instead (`run(command=...)`),
so it too runs in a sandbox that exists already.

What executions of one zygote share (one tenant's one pack version and
interpreter, never two tenants'): a host uid (per tenant: sandbox.zygote_uid,
a range apart from the per-execution and build uids), the pid namespace, the
sandbox's /tmp, and so RLIMIT_NPROC, which counts the uid's processes. Each
still has its own process group and session, work dir (a fresh 0700 subdir
of the zygote's, its cwd and HOME, removed afterwards), descriptors,
environment and per-process limits (RLIMIT_CPU is the execution's own).

The worker learns the child's host pid from SCM_CREDENTIALS on the status
socket (the kernel translates the sandbox's pid), and then watches, times out
and cancels it as process._Watch does a cold action: SIGTERM to the group,
SIGKILL after the grace period, leftovers of the group killed at exit. The
zygote reports the exit status and reaps the child only after the worker
let go, so the group id cannot be reused under the worker's last SIGKILL.

Lifecycle (ZygotePool): started lazily on first use, shared by concurrent
executions, closed after IDLE_S unused or beyond MAX_ZYGOTES (least recently
used first), replaced when dead, killed at the worker's exit (atexit, and
bwrap's --die-with-parent). A pack reload is a new pack dir, so a new
zygote; the old one idles out. Zygotes are started from one long-lived
thread: --die-with-parent is the parent *thread*'s death (PR_SET_PDEATHSIG),
and the worker runs each execution on a thread that ends with it.

Used only when the action runs sandboxed (a zygote without a sandbox would
share the worker's uid with every tenant), the request names its tenant
(`context["tenant_id"]`, which the worker always sets), outside AWS Lambda
(whose environment is scrubbed after every invocation) and unless
ATTUNE_ZYGOTE=off. Anything else, or a zygote that cannot start, is
the cold path: one interpreter and one sandbox per execution, as before.
"""

from __future__ import annotations

import array
import atexit
import json
import logging
import os
import queue
import resource
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.core.errors import ValidationFailed
from chalicelib.runners import process
from chalicelib.runners.base import Outcome, RunRequest, check_request, resolve_entry_point
from chalicelib.runners.output import OutputBuffer
from chalicelib.runners.sandbox import (
    PACK_MOUNT,
    SDK_DIR,
    SDK_MOUNT,
    WORK_MOUNT,
    WRAPPER_MOUNT,
    Sandbox,
    sandbox_for,
    zygote_uid,
)

log = logging.getLogger(__name__)

SETTING = "ATTUNE_ZYGOTE"
SERVER = SDK_DIR / "_attune_zygote.py"
SERVER_MOUNT = SDK_MOUNT / SERVER.name
IDLE_S = 60.0
MAX_ZYGOTES = 16
# A zygote is retired (a fresh one started, the old one closed once its last execution is done) after
# serving this many: whatever state accumulates in it (memory, a cache of the interpreter) stays bounded.
MAX_EXECUTIONS = 1000
# How long a zygote may take to start (bwrap, the interpreter, its imports) and a child to report in.
START_TIMEOUT_S = 10.0
# After a zygote failed to start for a key, that key runs cold for this long before trying again.
RETRY_AFTER_S = 30.0
# The descriptor numbers an execution's child gets, besides 0-2.
CONTEXT_FD = 3
CHANNEL_FD = 4
_TARGETS = [0, 1, 2, CHANNEL_FD, CONTEXT_FD]
_UCRED = struct.Struct("3i")
_MAX_STATUS = 4096


class ZygoteUnavailable(OSError):
    """No zygote could be started (or one died before taking the request): the execution runs cold."""


def enabled() -> bool:
    """ATTUNE_ZYGOTE (on|off, default on), and never inside AWS Lambda."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return False
    return os.environ.get(SETTING, "on").strip().lower() not in ("off", "0", "false", "no")


def tenant_of(request: RunRequest) -> int | None:
    """The tenant a request runs for; None when it does not say (then it gets no zygote: nothing to key on)."""
    tenant = request.context.get("tenant_id")
    if isinstance(tenant, bool) or not isinstance(tenant, int) or tenant < 0:
        return None
    return tenant


@dataclass(frozen=True)
class ZygoteKey:
    """What a zygote is for. The sandbox limits are part of it: a zygote's are fixed when it starts."""

    tenant_id: int
    pack_dir: str | None
    python: str
    bwrap: str
    limits: tuple[int, int, int]  # memory_mb, processes, file_size_mb


class Zygote:
    """One running fork server: the bwrap process, the control socket, the host dir bound at WORK_MOUNT."""

    def __init__(self, key: ZygoteKey, proc: subprocess.Popen[bytes], ctl: socket.socket, *, host_dir: Path,
                 uid: int, pid: int | None) -> None:
        self.key, self.proc, self.ctl, self.host_dir, self.uid = key, proc, ctl, host_dir, uid
        self.pid = pid  # the zygote's interpreter's host pid (from SCM_CREDENTIALS), for the bench's CPU figures
        self.lock = threading.Lock()  # one sendmsg at a time on the control socket
        self.active = 0
        self.served = 0
        self.last_used = time.monotonic()
        self.broken = False

    def alive(self) -> bool:
        """Still serving: not marked broken, its bwrap not exited."""
        return not self.broken and self.proc.poll() is None

    def submit(self, header: dict[str, Any], fds: list[int]) -> None:
        """Send one request with the execution's descriptors; ZygoteUnavailable if the zygote is gone."""
        data = json.dumps(header, separators=(",", ":")).encode()
        try:
            with self.lock:
                self.ctl.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        except OSError as exc:
            self.broken = True
            raise ZygoteUnavailable(f"the zygote took no request: {exc}") from exc

    def close(self) -> None:
        """End it: end of file on its control socket ends the zygote and its sandbox; SIGKILL if slow."""
        self.broken = True
        with suppress(OSError):
            self.ctl.close()
        try:
            self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            process._killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.host_dir, ignore_errors=True)


def _zygote_env() -> dict[str, str]:
    """The zygote's own environment: an action's (process.action_env) without the per-execution names."""
    probe = RunRequest(execution_id=0, runner_type="python3", parameters={})
    env = process.action_env(probe, CONTEXT_FD, home=WORK_MOUNT, sdk=SDK_MOUNT)
    for name in ("ATTUNE_EXECUTION_ID", "ATTUNE_CONTEXT_FD"):
        env.pop(name)
    return env


def _cpu_hard_limit() -> int:
    """The zygote's RLIMIT_CPU: as high as the worker's own; each child lowers its own to its execution's."""
    return resource.getrlimit(resource.RLIMIT_CPU)[1]


def start_zygote(key: ZygoteKey, sandbox: Sandbox, flags: list[str], pack_dir: Path | None) -> Zygote:
    """Start one zygote confined as an action is and wait until it is ready; ZygoteUnavailable otherwise."""
    host_dir = Path(tempfile.mkdtemp(prefix="attune-zygote-"))
    host_dir.chmod(0o711)  # the executions' uid passes through to its own subdir, lists nothing
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    env = _zygote_env()
    command = [key.python, *flags, str(SERVER_MOUNT), str(child.fileno()), str(WRAPPER_MOUNT)]
    proc: subprocess.Popen[bytes] | None = None
    try:
        launch = process._confined(command, sandbox, cwd=host_dir, env=env, pack_dir=pack_dir, python=key.python)
        try:
            launch.limits["cpu"] = _cpu_hard_limit()
            proc = subprocess.Popen(launch.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, cwd=host_dir, env=env,
                                    pass_fds=[child.fileno(), *launch.child_fds], start_new_session=True)
            child.close()
            launch.close_child_fds()
            launch.release()
        finally:
            launch.close()
        pid = _await_ready(parent, proc)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        child.close()
        parent.close()
        if proc is not None:
            process._killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(host_dir, ignore_errors=True)
        raise ZygoteUnavailable(f"the python zygote did not start: {exc}") from exc
    assert proc.stderr is not None
    proc.stderr.close()  # only its start's errors were of interest
    return Zygote(key, proc, parent, host_dir=host_dir, uid=sandbox.uid, pid=pid)


def _await_ready(ctl: socket.socket, proc: subprocess.Popen[bytes]) -> int | None:
    """Wait for the zygote's b"ready"; its host pid from the credentials. Its stderr in the error otherwise."""
    assert proc.stderr is not None
    if select_one(ctl, START_TIMEOUT_S):
        msg, ancdata, _flags, _addr = ctl.recvmsg(64, socket.CMSG_SPACE(_UCRED.size))
        if msg == b"ready":
            return _cred_pid(ancdata)
    os.set_blocking(proc.stderr.fileno(), False)
    try:
        err = proc.stderr.read(4000) or b""
    except OSError:
        err = b""
    raise ZygoteUnavailable(f"no ready message{': ' + err.decode(errors='replace').strip() if err else ''}")


def select_one(sock: socket.socket, timeout_s: float) -> bool:
    """Whether `sock` turned readable within the timeout."""
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_READ)
        return bool(sel.select(timeout_s))


def _cred_pid(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= _UCRED.size:
            pid = _UCRED.unpack(data[:_UCRED.size])[0]
            return pid if pid > 0 else None
    return None


class _Starter:
    """The one long-lived thread zygotes are started (and idle ones closed) on; see the module's docstring."""

    def __init__(self, tick: Callable[[], None], tick_s: float) -> None:
        self.jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self.tick, self.tick_s = tick, tick_s
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the starter thread and return its result (or raise its exception)."""
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="python-zygote-starter", daemon=True)
                self.thread.start()
        done: Future[Any] = Future()
        self.jobs.put((fn, done))
        return done.result()

    def _loop(self) -> None:
        while True:
            try:
                fn, done = self.jobs.get(timeout=self.tick_s)
            except queue.Empty:
                self.tick()
                continue
            try:
                done.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.set_exception(exc)


@dataclass
class ZygotePool:
    """The worker's zygotes by key: thread-safe, LRU-bounded, idle ones closed, dead or old ones replaced."""

    idle_s: float = IDLE_S
    max_zygotes: int = MAX_ZYGOTES
    max_executions: int = MAX_EXECUTIONS
    start: Callable[..., Zygote] = start_zygote
    zygotes: dict[Hashable, Zygote] = field(default_factory=dict)
    retiring: list[Zygote] = field(default_factory=list)  # replaced while busy: closed when their last one ends
    failed: dict[Hashable, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    def __post_init__(self) -> None:
        self.starter = _Starter(self.sweep, max(0.05, min(self.idle_s / 4, 5.0)))

    def acquire(self, key: Hashable, *args: Any) -> Zygote:
        """The live zygote for `key` (started if needed, `self.start(key, *args)`), counted as in use."""
        with self.lock:
            if self.closed:
                raise ZygoteUnavailable("the worker is stopping")
            zygote = self._take(key)
            if zygote is not None:
                return zygote
            failed_at = self.failed.get(key)
            if failed_at is not None and time.monotonic() - failed_at < RETRY_AFTER_S:
                raise ZygoteUnavailable("its zygote failed to start a moment ago")
        started: Zygote = self.starter.call(lambda: self._start(key, args))
        return started

    def _take(self, key: Hashable) -> Zygote | None:
        """The usable zygote for `key`, counted in (lock held); None when there is none."""
        zygote = self.zygotes.get(key)
        if zygote is None or not zygote.alive() or zygote.served >= self.max_executions:
            return None
        zygote.active += 1
        zygote.served += 1
        zygote.last_used = time.monotonic()
        return zygote

    def _retire(self, key: Hashable) -> list[Zygote]:
        """Drop the unusable zygote of `key` (lock held): to be closed now if idle, else once its last one ends."""
        old = self.zygotes.pop(key, None)
        if old is None:
            return []
        if old.active == 0 or not old.alive():
            return [old]
        self.retiring.append(old)
        return []

    def _start(self, key: Hashable, args: tuple[Any, ...]) -> Zygote:
        """On the starter thread (so one start per key at a time): start, or take what another start made."""
        with self.lock:
            zygote = self._take(key)
            if zygote is not None:
                return zygote
            stale = self._retire(key)
        for old in stale:
            old.close()
        try:
            zygote = self.start(key, *args)
        except ZygoteUnavailable as exc:
            with self.lock:
                self.failed[key] = time.monotonic()
            log.warning("python actions of this key run cold: %s", exc)
            raise
        with self.lock:
            self.failed.pop(key, None)
            zygote.active = zygote.served = 1
            self.zygotes[key] = zygote
            if self.closed:
                stale.append(zygote)
            stale += self._over_limit()
        for old in stale:
            old.close()
        if self.closed:
            raise ZygoteUnavailable("the worker is stopping")
        return zygote

    def _over_limit(self) -> list[Zygote]:
        """Idle zygotes beyond max_zygotes, least recently used first (held lock); busy ones are spared."""
        out: list[Zygote] = []
        idle = sorted((z for z in self.zygotes.values() if z.active == 0), key=lambda z: z.last_used)
        while len(self.zygotes) > self.max_zygotes and idle:
            victim = idle.pop(0)
            del self.zygotes[victim.key]
            out.append(victim)
        return out

    def release(self, zygote: Zygote) -> None:
        """One execution is done with it; a dead one is dropped at once, so the next gets a fresh one."""
        stale: list[Zygote] = []
        with self.lock:
            zygote.active -= 1
            zygote.last_used = time.monotonic()
            if zygote.active == 0:
                if zygote in self.retiring:
                    self.retiring.remove(zygote)
                    stale.append(zygote)
                elif not zygote.alive() and self.zygotes.get(zygote.key) is zygote:
                    stale.append(self.zygotes.pop(zygote.key))
        for old in stale:
            old.close()

    def sweep(self) -> None:
        """Close zygotes idle for idle_s, and dead ones nobody uses; forget old start failures."""
        now = time.monotonic()
        with self.lock:
            for key in [k for k, at in self.failed.items() if now - at >= RETRY_AFTER_S]:
                del self.failed[key]
            stale = [z for z in self.zygotes.values()
                     if z.active == 0 and (now - z.last_used >= self.idle_s or not z.alive())]
            for z in stale:
                del self.zygotes[z.key]
        for z in stale:
            z.close()

    def close(self) -> None:
        """Close every zygote (the worker stops); their running executions end with them."""
        with self.lock:
            self.closed = True
            stale = [*self.zygotes.values(), *self.retiring]
            self.zygotes.clear()
            self.retiring.clear()
        for z in stale:
            z.close()

    def reopen(self) -> None:
        """Take work again after `close` (tests)."""
        with self.lock:
            self.closed = False


_pool: ZygotePool | None = None
_pool_lock = threading.Lock()


def pool() -> ZygotePool:
    """This process's pool, made on first use and closed at exit."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ZygotePool()
            atexit.register(_pool.close)
        return _pool


# --- one execution ---------------------------------------------------------------------------


# What a shell action's execution runs instead of the wrapper: given the action file (host path, and as
# the action sees it), its work subdir (host, seen), it says the argv to exec and extra environment.
Command = Callable[[Path, Path, Path, Path], tuple[list[str], dict[str, str]]]


def run(
    request: RunRequest, *, python: str, flags: list[str], grace_s: float,
    cancel: threading.Event | None = None, on_started: Callable[[int], None] | None = None,
    command: Command | None = None, filename: str = "action.py",
) -> Outcome | None:
    """Run the action in its zygote; None when it must run cold (see the module's docstring).

    A python3 action runs the wrapper in the forked child. With `command`
    (the shell runner's), the child execs what it returns instead, so a
    shell action shares its tenant's zygote sandbox rather than starting a
    sandbox of its own; `filename` names inline code in the work subdir.
    Refusals are the cold path's (ValidationFailed, SandboxUnavailable), raised
    before anything starts.
    """
    tenant = tenant_of(request)
    if tenant is None or not enabled():
        return None
    check_request(request)
    pack_dir = request.pack_dir.resolve() if request.pack_dir is not None else None
    path: Path | None = None
    if request.code is None:
        assert request.entry_point is not None  # check_request guarantees it
        path = resolve_entry_point(request.pack_dir, request.entry_point)
    sandbox = sandbox_for(request.execution_id, request.timeout_s)
    if sandbox is None:
        return None
    limit = request.max_output_bytes
    outcome = Outcome(None, OutputBuffer(limit), OutputBuffer(limit), OutputBuffer(limit))
    if cancel is not None and cancel.is_set():  # as a cold start: nothing starts, not even a zygote
        outcome.canceled = True
        return outcome
    try:
        stdin_data = json.dumps(request.parameters, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"the action's parameters are not JSON: {exc}") from exc
    cfg = sandbox.limits
    key = ZygoteKey(tenant, str(pack_dir) if pack_dir is not None else None, python, sandbox.bwrap,
                    (cfg.memory_mb, cfg.processes, cfg.file_size_mb))
    zsandbox = Sandbox(sandbox.bwrap, zygote_uid(tenant), cfg, request.timeout_s)
    job = _Job(request, path, pack_dir, sandbox.rlimits(), stdin_data, command, filename)
    for attempt in range(2):  # a zygote found dead when taking the request is replaced once
        try:
            zygote = pool().acquire(key, zsandbox, flags, pack_dir)
        except ZygoteUnavailable:
            return None
        try:
            return _execute(zygote, job, grace_s=grace_s, cancel=cancel, on_started=on_started)
        except ZygoteUnavailable:
            if attempt:
                return None
        finally:
            pool().release(zygote)
    return None


@dataclass(frozen=True)
class _Job:
    """What one execution needs besides its zygote: checked and encoded before any zygote is asked."""

    request: RunRequest
    path: Path | None  # the pack's entry point (host path); None for inline code
    pack_dir: Path | None
    limits: dict[str, int]
    stdin_data: bytes
    command: Command | None = None  # exec this instead of running the wrapper (shell actions)
    filename: str = "action.py"  # inline code's file in the work subdir


def _execute(
    zygote: Zygote, job: _Job, *, grace_s: float, cancel: threading.Event | None,
    on_started: Callable[[int], None] | None,
) -> Outcome:
    """One execution in `zygote`: its work subdir, its descriptors sent, watched to the end, cleaned up."""
    request = job.request
    limit = request.max_output_bytes
    outcome = Outcome(None, OutputBuffer(limit), OutputBuffer(limit), OutputBuffer(limit))
    sub = Path(tempfile.mkdtemp(dir=zygote.host_dir, prefix=f"{request.execution_id}-"))
    try:
        os.chown(sub, zygote.uid, zygote.uid)
        seen_dir = WORK_MOUNT / sub.name
        if job.path is None:
            assert request.code is not None
            host_file = sub / job.filename
            host_file.write_text(request.code, encoding="utf-8")
            seen_file = seen_dir / job.filename
        else:
            assert job.pack_dir is not None
            host_file = job.path
            seen_file = PACK_MOUNT / job.path.relative_to(job.pack_dir)
        env = process.action_env(request, CONTEXT_FD, home=seen_dir, sdk=SDK_MOUNT)
        env["PWD"] = str(seen_dir)  # as bwrap's --chdir sets it for a cold start
        header: dict[str, Any] = {"argv": [str(WRAPPER_MOUNT), str(CHANNEL_FD), str(seen_file)],
                                  "cwd": str(seen_dir), "env": env, "limits": job.limits, "targets": _TARGETS}
        if job.command is not None:
            argv, extra = job.command(host_file, seen_file, sub, seen_dir)
            if shutil.which(argv[0], path=env.get("PATH")) is None:  # as the cold start says it, before any fork
                outcome.spawn_error = f"could not start the action: [Errno 2] No such file or directory: {argv[0]!r}"
                return outcome
            env.update(extra)
            header.update(argv=argv, exec=True)
        return _Execution(zygote, outcome, request, job.stdin_data).run(header, grace_s, cancel, on_started)
    finally:
        shutil.rmtree(sub, ignore_errors=True)


class _Execution:
    """The worker's side of one forked execution: the pipes, the status socket, the watch loop."""

    def __init__(self, zygote: Zygote, outcome: Outcome, request: RunRequest, stdin_data: bytes) -> None:
        self.zygote, self.outcome, self.request = zygote, outcome, request
        self.pending = memoryview(stdin_data)
        self.pid: int | None = None
        self.exited = False
        self.zygote_died = False
        self.term_at: float | None = None
        self.drain_until: float | None = None
        self.sel = selectors.DefaultSelector()
        self.ours: list[int] = []  # stdin's write end, then stdout, stderr, channel read ends; -1 once closed
        self.readers = 0

    def run(self, header: dict[str, Any], grace_s: float, cancel: threading.Event | None,
            on_started: Callable[[int], None] | None) -> Outcome:
        """Send the request, learn the pid, watch; every descriptor closed and the group killed at the end."""
        outcome = self.outcome
        ours = self.ours
        theirs: list[int] = []
        status: socket.socket | None = None
        started = time.monotonic()
        try:
            stdin_r, stdin_w = os.pipe()
            ours.append(stdin_w)
            theirs.append(stdin_r)
            for _ in range(3):  # stdout, stderr, the result channel
                r, w = os.pipe()
                ours.append(r)
                theirs.append(w)
            theirs.append(process._context_pipe(self.request))
            status, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            theirs.append(peer.detach())
            status.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            try:
                self.zygote.submit(header, theirs)
            finally:
                for fd in theirs:
                    os.close(fd)
                theirs = []
            if not self._await_start(status, started):
                return outcome
            if on_started is not None and self.pid is not None:
                on_started(self.pid)
            streams = [(ours[1], outcome.stdout), (ours[2], outcome.stderr), (ours[3], outcome.channel)]
            for fd, buf in streams:
                os.set_blocking(fd, False)
                self.sel.register(fd, selectors.EVENT_READ, buf)
            self.readers = len(streams)
            os.set_blocking(stdin_w, False)
            self.sel.register(stdin_w, selectors.EVENT_WRITE, None)
            self.sel.register(status, selectors.EVENT_READ, "status")
            self.status = status
            self._watch(started + self.request.timeout_s, grace_s, cancel)
            if self.zygote_died and outcome.exit_code is None:
                outcome.spawn_error = "the zygote running the action died during the execution"
        finally:
            if self.pid is not None and not self.zygote_died:
                process._killpg(self.pid, signal.SIGKILL)  # leftovers; the unreaped child holds the pgid
            self.sel.close()
            for fd in (*ours, *theirs):
                if fd >= 0:
                    with suppress(OSError):
                        os.close(fd)
            if status is not None:
                status.close()  # the zygote reaps the child now
            outcome.duration_s = time.monotonic() - started
        return outcome

    def _await_start(self, status: socket.socket, started: float) -> bool:
        """The child's b"S" (its host pid) or why it did not start; False when nothing runs."""
        msg, pid = self._recv(status, started + START_TIMEOUT_S)
        if msg.startswith(b"S") and pid is not None:
            self.pid = pid
            self.outcome.pid = pid
            return True
        if msg.startswith(b"E"):
            self.outcome.spawn_error = f"could not start the action: {msg[1:].decode(errors='replace')}"
        elif msg.startswith(b"X"):  # died before reporting in; nothing of the tenant's ran
            self.outcome.spawn_error = f"could not start the action: its process exited {msg[1:].decode()}"
        else:
            self.zygote.broken = True
            raise ZygoteUnavailable("the zygote did not start the execution")
        return False

    @staticmethod
    def _recv(status: socket.socket, deadline: float) -> tuple[bytes, int | None]:
        left = deadline - time.monotonic()
        if left <= 0 or not select_one(status, left):
            return b"", None
        try:
            msg, ancdata, _flags, _addr = status.recvmsg(_MAX_STATUS, socket.CMSG_SPACE(_UCRED.size))
        except OSError:
            return b"", None
        return msg, _cred_pid(ancdata)

    def _watch(self, deadline: float, grace_s: float, cancel: threading.Event | None) -> None:
        """Until the child has exited (or the zygote died) and the pipes are drained; as process._Watch."""
        while True:
            now = time.monotonic()
            if self.exited:
                if self.drain_until is None:
                    if self.pid is not None and not self.zygote_died:
                        process._killpg(self.pid, signal.SIGKILL)
                    self.drain_until = now + process.DRAIN_AFTER_EXIT_S
                if self.readers == 0 or now >= self.drain_until:
                    return
                wait: float | None = self.drain_until - now
            else:
                wait = self._stop_if_due(now, deadline, grace_s, cancel)
            for key, _events in self.sel.select(None if wait is None else max(0.0, wait)):
                self._handle(key)

    def _stop_if_due(self, now: float, deadline: float, grace_s: float, cancel: threading.Event | None) -> float:
        outcome, waits = self.outcome, [process.POLL_S] if cancel is not None else []
        assert self.pid is not None
        if self.term_at is None:
            outcome.canceled = cancel is not None and cancel.is_set()
            outcome.timed_out = not outcome.canceled and now >= deadline
            if outcome.canceled or outcome.timed_out:
                self.term_at = now
                process._killpg(self.pid, signal.SIGTERM)
            else:
                waits.append(deadline - now)
        if self.term_at is not None and not outcome.killed:
            if now >= self.term_at + grace_s:
                outcome.killed = True
                process._killpg(self.pid, signal.SIGKILL)
            else:
                waits.append(self.term_at + grace_s - now)
        return min(waits) if waits else 3600.0

    def _handle(self, key: selectors.SelectorKey) -> None:
        if key.data == "status":
            try:
                msg = self.status.recv(_MAX_STATUS)
            except OSError:
                msg = b""
            if msg.startswith(b"X"):
                self.outcome.exit_code = int(msg[1:])
            elif not msg:  # end of file before the exit status: the zygote is gone, and its sandbox with it
                self.zygote_died = True
                self.zygote.broken = True
            else:
                return
            self.exited = True
            self.sel.unregister(key.fd)
        elif key.data is None:
            self._feed_stdin()
        elif not process._drain(key.fd, key.data):
            self.sel.unregister(key.fd)
            self.readers -= 1

    def _feed_stdin(self) -> None:
        stdin_w = self.ours[0]
        try:
            written = os.write(stdin_w, self.pending[:65536])
        except BlockingIOError:
            return
        except OSError:  # EPIPE: the action exited or closed stdin without reading it all
            written = len(self.pending)
        self.pending = self.pending[written:]
        if not self.pending:
            self.sel.unregister(stdin_w)
            self.ours[0] = -1
            with suppress(OSError):
                os.close(stdin_w)



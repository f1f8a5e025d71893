"""The python3 fork server ("zygote"): `python _attune_zygote.py <control_fd> <wrapper.py>`, inside the sandbox.

Why: a python3 action's cost was a whole interpreter start plus a bwrap
sandbox start per execution. One zygote per (tenant, pack version,
interpreter) is started confined exactly as an action is (the worker's
chalicelib/runners/zygote.py); it imports what the wrapper needs (the
wrapper itself, `_attune_entry`, `_json`) and then only forks: each
execution is a child of it, and tenant code runs in those children only,
never in the zygote itself.

Standard library only, Python 3.8-compatible, like `_attune_entry` (a pack's
virtualenv may be another version). It imports C modules only (`_socket`,
`_signal`, `select`, `fcntl`, `resource`), never `socket` or `signal` (they
pull in `enum`): what the zygote has imported, every action finds already
imported, so it should look like what a fresh interpreter has.

Protocol. The control socket (SOCK_SEQPACKET, one message per request) gets
`b"ready"` once, then carries requests: a JSON header (argv, cwd, env,
limits, the fd numbers the child's descriptors must get) with the
execution's descriptors as SCM_RIGHTS: stdin, stdout, stderr, the result
channel, the context pipe and a status socket (SOCK_SEQPACKET). The child
answers on the status socket `b"S"` with SCM_CREDENTIALS (the kernel gives
the worker its host pid) or `b"E<message>"` when it could not be set up;
then it closes that socket, so tenant code cannot write on it. The zygote
writes `b"X<exit code>"` (negative: killed by that signal) once the child
has exited, but reaps it only when the worker closes its end: until then the
zombie keeps the process group id reserved, so the worker's last SIGKILL to
the group can never hit a reused id. A worker that closes its end early
(it gave up) gets the child's group killed. End of file on the control
socket (the worker is gone or evicted this zygote) kills every child and
ends the zygote, and with it the sandbox.

A header with `"exec": true` (the shell runner's) makes the child exec its
argv once set up, instead of running the wrapper: a shell action then costs
a fork and an exec in a sandbox that already exists, not a sandbox of its
own. Before the exec, the signals Python ignores at start (SIGPIPE, SIGXFSZ)
get their default action back, as subprocess's `restore_signals` does: a
shell pipeline must end when its reader goes.
"""

from __future__ import annotations

import _signal
import _socket
import fcntl
import gc
import os
import resource
import select
import sys

try:
    from _attune_entry import loads
except ImportError:  # imported by the platform (its tests), not started in a sandbox
    from chalicelib.runners.sdk._attune_entry import loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MAX_REQUEST = 256 * 1024
N_FDS = 6  # stdin, stdout, stderr, result channel, context pipe, status socket
_INT = 4  # a C int: fds in SCM_RIGHTS, the fields of struct ucred
RLIMITS = {"data": resource.RLIMIT_DATA, "nproc": resource.RLIMIT_NPROC, "fsize": resource.RLIMIT_FSIZE,
           "cpu": resource.RLIMIT_CPU}
# Where a process's session id is in /proc/<pid>/stat, counting the fields after the command's ")".
_STAT_SESSION = 3
_STAT_PPID = 1


def _noop(signum: int, frame: Any) -> None:
    """SIGCHLD's handler: it only has to exist, so the wakeup fd wakes `select`."""


def _ints(data: bytes) -> list[int]:
    return [int.from_bytes(data[i:i + _INT], sys.byteorder) for i in range(0, len(data) - len(data) % _INT, _INT)]


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    """`fn(*args)`, an OSError ignored (a descriptor or process already gone, a worker that left)."""
    try:  # noqa: SIM105 - contextlib would be one more import every action finds made
        fn(*args)
    except OSError:
        pass


def _send(fd: int, data: bytes) -> None:
    """One message on a status socket; a worker that is gone is no error of ours."""
    _quietly(os.write, fd, data)


class _Child:
    """One execution: its status socket, and what is known of its end."""

    __slots__ = ("code", "released", "status_fd")

    def __init__(self, status_fd: int) -> None:
        self.status_fd = status_fd
        self.code: int | None = None  # set once it has exited (not reaped yet)
        self.released = False  # the worker closed its end


def _exit_code(pid: int) -> int | None:
    """The child's exit code (-N: killed by signal N) once it has exited, without reaping it."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return -9
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _reap(pid: int) -> None:
    _quietly(os.waitpid, pid, 0)


def _kill_strays(children: dict[int, _Child]) -> None:
    """Kill what left every running execution's session and whose ancestors are no execution's.

    A process that called setsid() is out of its execution's process group,
    which is all the worker kills; with one sandbox per execution the
    sandbox's end killed it, here the sandbox lives on. Known by /proc of the
    sandbox's own pid namespace; the zygote (session 0 as seen here: its
    session leader is outside) and bwrap's init (pid 1, root's) are spared.
    """
    me = os.getpid()
    stats: dict[int, list[str]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/" + name + "/stat", "rb") as f:
                    stats[int(name)] = f.read().decode(errors="replace").rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
    running = {pid for pid, child in children.items() if child.code is None}
    own_session = stats.get(me, ["", "", "", "0"])[_STAT_SESSION]
    for pid, fields in stats.items():
        if pid in (1, me) or len(fields) <= _STAT_SESSION or fields[_STAT_SESSION] == own_session:
            continue
        if int(fields[_STAT_SESSION]) in running:
            continue
        ancestor, seen = int(fields[_STAT_PPID]), 0
        while ancestor not in (0, 1) and ancestor not in running and ancestor in stats and seen < len(stats):
            ancestor, seen = int(stats[ancestor][_STAT_PPID]), seen + 1
        if ancestor not in running:
            _quietly(os.kill, pid, 9)


def _wipe(path: str) -> None:
    """Empty a directory tree (no `shutil`: its imports would be every action's)."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _wipe(entry.path)
            _quietly(os.rmdir, entry.path)
        else:
            _quietly(os.unlink, entry.path)


def _after(children: dict[int, _Child]) -> None:
    """Once an execution is reaped: its strays killed; with none left running, /tmp emptied as a fresh sandbox's.

    The sandbox's /tmp is shared by the executions that overlap in time; what
    one leaves there is gone when the zygote is idle again, so it neither
    reaches a later execution nor fills the tmpfs over the zygote's life.
    """
    _kill_strays(children)
    if not children:
        _wipe("/tmp")  # noqa: S108 - the sandbox's own tmpfs


def _become(request: dict[str, Any], fds: list[int]) -> list[str]:
    """In the forked child: its own session, descriptors, environment, cwd and limits; the wrapper's argv.

    Everything of the zygote's own is closed (the control socket, the other
    executions' status sockets, the wakeup pipe) before the status socket,
    the last, is closed too: the tenant's code gets exactly the descriptors
    the targets name, as if it had been started fresh.
    """
    os.setsid()
    _signal.set_wakeup_fd(-1)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds]
    status = high[-1]
    try:
        targets = [int(n) for n in request["targets"]]
        for i, target in enumerate(targets):
            os.dup2(high[i], target)  # inheritable, as the worker's pass_fds would have made them
        keep = {*targets, status}
        for name in os.listdir("/proc/self/fd"):
            if int(name) not in keep:
                _quietly(os.close, int(name))
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        for name, wanted in request["limits"].items():
            hard = resource.getrlimit(RLIMITS[name])[1]
            value = int(wanted) if hard == resource.RLIM_INFINITY else min(int(wanted), hard)
            resource.setrlimit(RLIMITS[name], (value, value))
        argv = [str(arg) for arg in request["argv"]]
    except Exception as exc:  # noqa: BLE001 - reported to the worker, nothing of the tenant has run
        _send(status, b"E" + (type(exc).__name__ + ": " + str(exc)).encode(errors="replace")[:4000])
        os._exit(127)
    creds = b"".join(n.to_bytes(_INT, sys.byteorder, signed=True) for n in (os.getpid(), os.getuid(), os.getgid()))
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, status)
    try:
        sock.sendmsg([b"S"], [(_socket.SOL_SOCKET, _socket.SCM_CREDENTIALS, creds)])
    except OSError:
        os._exit(127)  # the worker is gone: nothing to run for
    finally:
        sock.close()
    if request.get("exec"):
        _exec(argv)
    return argv


def _exec(argv: list[str]) -> None:
    """Replace this child with `argv` (PATH searched, as a cold start's bwrap does); never returns."""
    for name in ("SIGPIPE", "SIGXFSZ"):
        signum = getattr(_signal, name, None)
        if signum is not None:
            _signal.signal(signum, _signal.SIG_DFL)
    try:
        os.execvp(argv[0], argv)  # noqa: S606 - the action's own argv, as a cold start execs it
    except OSError as exc:  # the worker checked the command exists; it vanished, or cannot be executed
        os.write(2, ("could not start the action: " + str(exc) + "\n").encode(errors="replace"))
    os._exit(127)


def serve(control_fd: int) -> list[str]:
    """The zygote's loop; returns only in a forked child, with the argv its wrapper runs."""
    ctl = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, control_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    _signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    _signal.signal(_signal.SIGCHLD, _noop)
    children: dict[int, _Child] = {}
    by_fd: dict[int, int] = {}
    ctl.sendall(b"ready")
    while True:
        ready = select.select([control_fd, wake_r, *by_fd], [], [])[0]
        if wake_r in ready:
            _drain(wake_r)
        for fd in ready:
            if fd in by_fd:
                _on_status(by_fd[fd], children, by_fd)
        _check_exits(children)
        if control_fd in ready:
            argv = _take_request(ctl, children, by_fd)
            if argv is not None:
                return argv


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _take_request(ctl: Any, children: dict[int, _Child], by_fd: dict[int, int]) -> list[str] | None:
    """Receive one request and fork its child; in the child, the wrapper's argv, else None."""
    msg, ancdata, flags, _addr = ctl.recvmsg(MAX_REQUEST, _socket.CMSG_SPACE(N_FDS * _INT), _socket.MSG_CMSG_CLOEXEC)
    fds = [fd for level, kind, data in ancdata if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
           for fd in _ints(data)]
    if not msg and not fds:  # the worker closed the control socket: the end of this zygote
        for pid in children:
            _quietly(os.killpg, pid, 9)
        os._exit(0)
    if len(fds) != N_FDS or flags & (_socket.MSG_CTRUNC | _socket.MSG_TRUNC):
        for fd in fds:
            _quietly(os.close, fd)
        return None
    try:
        request = loads(msg.decode())
        pid = os.fork()
    except Exception as exc:  # noqa: BLE001 - EAGAIN (the tenant's process limit): that execution fails
        _send(fds[-1], b"E" + (type(exc).__name__ + ": " + str(exc)).encode(errors="replace")[:4000])
        for fd in fds:
            _quietly(os.close, fd)
        return None
    if pid == 0:
        ctl.detach()  # its fd is closed with the others; the object must not close a reused number later
        return _become(request, fds)
    for fd in fds[:-1]:
        _quietly(os.close, fd)
    children[pid] = _Child(fds[-1])
    by_fd[fds[-1]] = pid
    return None


def _on_status(pid: int, children: dict[int, _Child], by_fd: dict[int, int]) -> None:
    """The worker closed its end of an execution's status socket: reap it, or kill its group first."""
    child = children[pid]
    try:
        data = os.read(child.status_fd, 64)
    except OSError:
        data = b""
    if data:
        return  # the worker never writes; ignore
    child.released = True
    del by_fd[child.status_fd]
    _quietly(os.close, child.status_fd)
    if child.code is None:
        _quietly(os.killpg, pid, 9)  # the worker gave up on it; it is reaped once it has exited
    else:
        _reap(pid)
        del children[pid]
        _after(children)


def _check_exits(children: dict[int, _Child]) -> None:
    """Report each newly exited child on its status socket (reaped later), or reap one already released."""
    for pid, child in list(children.items()):
        if child.code is not None:
            continue
        code = _exit_code(pid)
        if code is None:
            continue
        child.code = code
        if child.released:
            _reap(pid)
            del children[pid]
            _after(children)
        else:
            _send(child.status_fd, b"X" + str(code).encode())


def _load_wrapper(path: str) -> Any:
    """The action wrapper as a module (not `__main__`, so its own `main(sys.argv)` does not run here)."""
    module = type(sys)("_attune_wrapper")
    module.__file__ = path
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec")
    exec(code, module.__dict__)  # noqa: S102 - the platform's own wrapper, not tenant code
    return module


def main(argv: list[str]) -> None:
    """Serve; in each forked child, run the wrapper's main as `python wrapper.py ...` would."""
    wrapper = _load_wrapper(argv[2])
    # What is loaded now is never garbage: out of the collector's sight, a child's collections (its
    # exit's above all) do not touch, and so copy, the pages every child shares with the zygote.
    gc.freeze()
    child_argv = serve(int(argv[1]))
    wrapper.__name__ = "__main__"
    sys.modules["__main__"] = wrapper  # as in `python wrapper.py`: the wrapper is __main__
    sys.argv = child_argv
    try:
        wrapper.main(child_argv)
    except SystemExit as exc:
        code = _system_exit_code(exc)
    except KeyboardInterrupt:
        raise  # the interpreter's own way: the traceback, then death by SIGINT
    except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
        sys.excepthook(*sys.exc_info())
        code = 1
    else:
        code = 0
    _exit(code, wrapper)


def _system_exit_code(exc: SystemExit) -> int:
    """The exit status the interpreter gives an uncaught SystemExit (a non-int code is printed, status 1)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:  # noqa: SIM105 - no contextlib here (module docstring)
        sys.stderr.write(str(code) + "\n")
    except Exception:  # noqa: BLE001, S110 - as the interpreter: an unprintable code still exits 1
        pass
    return 1


def _exit(code: int, wrapper: Any) -> None:
    """End the child as the interpreter's shutdown would, for what an action can observe, then os._exit.

    In the interpreter's order: non-daemon threads are waited for, atexit
    functions run, the tenant module's globals are dropped and collected (so
    what they hold is finalized: a file opened at module level is flushed
    and closed), the standard streams are flushed. The rest of a full
    finalization (tearing every module down) is skipped: in a forked child
    it writes to, and so copies, nearly every page it shares with the
    zygote, which was half of a trivial action's CPU. What that leaves out:
    `__del__` of objects that only the stdlib's modules still hold at exit.
    """
    threading = sys.modules.get("threading")
    if threading is not None:
        try:  # noqa: SIM105 - no contextlib here (module docstring)
            threading._shutdown()  # type: ignore[attr-defined]
        except BaseException:  # noqa: BLE001, S110 - as the interpreter: exit anyway
            pass
    import atexit

    atexit._run_exitfuncs()
    for name in ("attune_action_main", "__main__"):
        module = sys.modules.get(name)
        if module is not None and module is not wrapper:
            module.__dict__.clear()
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:  # noqa: BLE001 - a closed or broken stream: the status says it
            if code == 0:
                code = 120  # what the interpreter exits with when flushing stdout fails
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv)

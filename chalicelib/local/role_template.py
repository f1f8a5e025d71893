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

import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
from typing import Any

MAX_REQUEST_BYTES = 1024 * 1024
FD_SIZE = 4  # bytes of one descriptor in SCM_RIGHTS ancillary data
PR_SET_NAME = 15  # <linux/prctl.h>


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

        code = role.run(str(request["role"]))
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


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""What an action may leave behind in a reused Lambda environment, removed after every invocation.

Why: Lambda reuses a warm environment of the runner function for later
invocations, of any tenant, and bubblewrap cannot run there. A process an
action left behind (a daemon, or one that escaped its process group with
`setsid`) could watch the next tenant's action, and files it wrote to /tmp
outside its work dir would be there for the next one to read. So the runner
notes what exists when its environment starts, and after each invocation
kills every other process below it and deletes every other entry of /tmp,
before the environment takes the next invocation (Lambda runs one invocation
at a time per environment).

The handler's process becomes a child subreaper when the baseline is taken,
so whatever an action leaves behind, even a daemon that double-forked out of
its session, stays among the handler's descendants; only descendants are
ever killed, and a process is known by its pid and its start time together,
so a pid the kernel reused is not mistaken for another. Only the runner
function scrubs, and only inside Lambda (`AWS_LAMBDA_FUNCTION_NAME`): locally
every action has a sandbox of its own (chalicelib/runners/sandbox.py), and
/tmp is everybody's.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# Kill passes: a fork bomb can make processes between one listing and its kills.
MAX_PASSES = 20
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


@dataclass(frozen=True)
class Baseline:
    """What the environment held before any tenant code ran: processes below the handler, /tmp's entries."""

    processes: frozenset[tuple[int, int]]
    tmp_entries: frozenset[str]
    tmp: Path


@dataclass(frozen=True)
class Scrubbed:
    """What one scrub removed."""

    killed: int
    removed: int


def in_lambda() -> bool:
    """Whether this process is a Lambda function's (the runtime sets AWS_LAMBDA_FUNCTION_NAME)."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks since boot) from /proc/<pid>/stat; None if the process is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')': split after the last one.
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[19])


def _descendants() -> set[tuple[int, int]]:
    """Every process below this one, as (pid, start time)."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found is not None:
                children.setdefault(found[0], []).append((int(entry.name), found[1]))
    out: set[tuple[int, int]] = set()
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child[0])
    return out


def _become_subreaper() -> None:
    """Orphans below this process are reparented to it, not to init, so they stay its descendants (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def snapshot(tmp: Path | None = None) -> Baseline:
    """The environment as it is now (and this process made a subreaper): once, before any tenant code runs."""
    _become_subreaper()
    tmp = tmp or Path(tempfile.gettempdir())
    entries = frozenset(e.name for e in tmp.iterdir()) if tmp.is_dir() else frozenset()
    return Baseline(frozenset(_descendants()), entries, tmp)


def scrub(baseline: Baseline) -> Scrubbed:
    """Kill every process below this one and delete every entry of the baseline's /tmp it does not hold."""
    killed = 0
    for _ in range(MAX_PASSES):
        strangers = [pid for pid, _ in _descendants() - baseline.processes]
        if not strangers:
            break
        for pid in strangers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        _reap()
    removed = 0
    if baseline.tmp.is_dir():
        for entry in baseline.tmp.iterdir():
            if entry.name in baseline.tmp_entries:
                continue
            with contextlib.suppress(OSError):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed += 1
    return Scrubbed(killed, removed)


def _reap() -> None:
    """Collect this process's killed children (and orphans reparented to it), so none lingers as a zombie."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return

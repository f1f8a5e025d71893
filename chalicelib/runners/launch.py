"""Starting one confined process: bwrap's options on a pipe, then its limits, then the command.

Why a handshake instead of `prlimit ... bwrap ...` or a preexec_fn: each
would cost the start an extra exec, and a preexec_fn turns subprocess's
vfork into a full fork of the worker (its page tables copied: measured
5 ms more per start than the exec it saved). bwrap is given `--info-fd`
(it writes its namespace init's host pid there right after cloning it) and
`--block-fd` (the init waits on it after building the sandbox, before
forking the command). The worker sets the limits on that init with
prlimit(2) and then unblocks it, so the command and everything it starts
inherit them, and nothing of it runs unlimited. If bwrap dies or stalls
first, the start fails and the sandbox is killed.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from chalicelib.runners.sandbox import RLIMITS, Sandbox, encode, exit_code

# How long bwrap may take to create its namespaces and report its init's pid.
RELEASE_TIMEOUT_S = 10.0
# The options are written into the pipe before bwrap starts: they must fit in its buffer (64 KiB).
MAX_OPTIONS_BYTES = 60 * 1024


class SandboxStartFailed(OSError):
    """bwrap died or stalled before its limits could be set: nothing of the action ran."""


@dataclass
class Launch:
    """One confined start: the argv, the descriptors the child inherits, and the worker's ends of the handshake.

    The child gets bwrap's options on a pipe (`--args`), the write end of
    an info pipe (`--info-fd`) and the read end of a block pipe
    (`--block-fd`), plus a copy of that pipe's write end as `--sync-fd`
    (which bwrap's init keeps and the command does not inherit): bwrap takes
    end of file on the block pipe for "go", so without a writer of its own a
    worker killed between the spawn and `release` would let the command start
    with no limits; with it, such an orphaned init just waits (the command
    never starts). After the spawn, `release` reads the init's pid, sets the
    limits on it and unblocks it; `close` releases what is left either way.
    """

    argv: list[str]
    child_fds: list[int]
    info_r: int
    block_w: int
    limits: dict[str, int]

    def close_child_fds(self) -> None:
        """The parent's copies of the child's descriptors: closed once it has them (or failed to start)."""
        for fd in self.child_fds:
            _close(fd)
        self.child_fds = []

    def release(self, timeout_s: float = RELEASE_TIMEOUT_S) -> int:
        """Set the limits on bwrap's init and let it start the command; its host pid.

        Raises SandboxStartFailed when bwrap exits or stalls first: the
        caller kills what it started. Nothing of the command has run then.
        """
        info = b""
        deadline = time.monotonic() + timeout_s
        while not info.rstrip().endswith(b"}"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.info_r], [], [], left)[0]:
                raise SandboxStartFailed("bwrap did not report its sandbox's pid in time")
            chunk = os.read(self.info_r, 4096)
            if not chunk:
                raise SandboxStartFailed("bwrap exited before its sandbox started")
            info += chunk
        try:
            pid = int(json.loads(info)["child-pid"])
            for name, value in self.limits.items():
                resource.prlimit(pid, RLIMITS[name], (value, value))
        except (ValueError, KeyError, TypeError) as exc:
            raise SandboxStartFailed(f"bwrap's sandbox could not be limited: {exc}") from exc
        os.write(self.block_w, b"1")
        return pid

    def close(self) -> None:
        """The worker's ends of the handshake; closing the block pipe unblocks (or ends) a waiting bwrap."""
        self.close_child_fds()
        for fd in (self.info_r, self.block_w):
            _close(fd)
        self.info_r = self.block_w = -1


def _close(fd: int) -> None:
    if fd >= 0:
        with suppress(OSError):
            os.close(fd)


def _pipe_with(data: bytes) -> int:
    """A pipe's read end already holding `data` (which must fit in the pipe buffer, 64 KiB)."""
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, data)
    except OSError:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return read_fd



def prepare(
    sandbox: Sandbox, command: Sequence[str], *, work_dir: Path | None, env: dict[str, str],
    pack_dir: Path | None = None, read_only: Sequence[Path] = (), mounts: Sequence[tuple[Path, Path]] = (),
    writable: Sequence[tuple[Path, Path]] = (), chdir: Path | None = None,
) -> Launch:
    """Everything a confined start needs but the spawn: the pipes, bwrap's options written into one, the argv.

    The options are written before bwrap starts, so they must fit in the
    pipe buffer; longer ones raise ValueError.
    """
    info_r, info_w = os.pipe()
    block_r, block_w = os.pipe()
    fds = [info_w, block_r]
    try:
        hold = os.dup(block_w)  # the init's own writer: see Launch
        fds.append(hold)
        options = sandbox.options(work_dir=work_dir, env=env, pack_dir=pack_dir, read_only=read_only,
                                  mounts=mounts, writable=writable, info_fd=info_w, block_fd=block_r, chdir=chdir,
                                  sync_fd=hold)
        blob = encode(options)
        if len(blob) > MAX_OPTIONS_BYTES:
            raise ValueError(f"the sandbox's options are too long ({len(blob)} bytes)")
        args_r = _pipe_with(blob)
    except BaseException:
        for fd in (info_r, block_w, *fds):
            _close(fd)
        raise
    fds.append(args_r)
    return Launch(sandbox.argv(command, args_fd=args_r), fds, info_r, block_w, sandbox.rlimits())


def run(
    sandbox: Sandbox, command: Sequence[str], *, timeout_s: float, cwd: Path | None = None,
    env: dict[str, str], pack_dir: Path | None = None, read_only: Sequence[Path] = (),
    mounts: Sequence[tuple[Path, Path]] = (), writable: Sequence[tuple[Path, Path]] = (), chdir: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `command` confined to the end and collect its output: the probe's and dependency builds' way in.

    Actions have their own loop (process.run_process: grace periods,
    cancel, bounded output); this is for short, trusted-shape commands whose
    whole output fits in memory. Raises subprocess.TimeoutExpired (after
    killing the sandbox) and OSError/SandboxStartFailed when it cannot start.
    """
    launch = prepare(sandbox, command, work_dir=cwd, env=env, pack_dir=pack_dir, read_only=read_only, mounts=mounts,
                     writable=writable, chdir=chdir)
    try:
        proc = subprocess.Popen(launch.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=cwd, env=env, pass_fds=launch.child_fds,
                                start_new_session=True)
        launch.close_child_fds()
        try:
            launch.release()
            out, err = proc.communicate(timeout=timeout_s)
        except BaseException:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    finally:
        launch.close()
    return subprocess.CompletedProcess(launch.argv, exit_code(proc.returncode), out, err)

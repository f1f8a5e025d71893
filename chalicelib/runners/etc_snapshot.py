"""The few files of the host's /etc a sandbox needs, copied into one private directory bound as the sandbox's /etc.

Why: each bind mount costs bwrap a mount, a read-only remount and a walk
of the mount table, so eighteen `--ro-bind-try /etc/<name>` were a third of
a sandboxed start. One directory holding copies of exactly those files (name
resolution, TLS roots, users, the dynamic linker's cache, Debian's
alternatives) is one bind, and the action sees the same content.

The copy follows the host: every start compares each source's (mtime, size,
inode) with the snapshot's, and a change (DHCP rewriting resolv.conf, a
package adding a CA), or a snapshot gone (a /tmp cleaner), makes a new one.
Snapshots are named by that fingerprint and shared by the user's processes,
so restarts reuse one rather than each leaving a copy behind; an older one
stays for sandboxes still running on it. `ssl/private` is never copied:
keys are nobody's business in a sandbox.

`nsswitch.conf` is the one file changed on the way: every source but
`files` and `dns` is dropped. An action runs as a uid no passwd file
names, so each `getpwuid` misses `files` and goes on to the next source;
with Debian's `passwd: files systemd`, that meant bash (and anything that
asks who it is) loading libnss_systemd, libcap and libm and probing the
userdb directories on every start: most of a sandboxed bash's CPU
(measured with strace and the machine's busy time, bench/sandbox.py).
Nothing behind those sources (systemd-userdbd, NIS, Berkeley DB files) is
reachable from a sandbox anyway.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path

ETC = Path("/etc")
# What of /etc an action needs: name resolution, TLS roots, users, the dynamic
# linker's cache, Debian's alternatives links. Nothing else of the host's /etc.
ETC_FILES = (
    "resolv.conf", "hosts", "host.conf", "nsswitch.conf", "gai.conf", "services", "protocols",
    "passwd", "group", "localtime", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl",
    "ca-certificates", "ca-certificates.conf", "alternatives", "mime.types",
)
NEVER = ("private",)  # /etc/ssl/private: TLS keys
# Name-service sources a sandbox keeps (nsswitch.conf); part of the snapshot's name, so a change makes a new one.
NSS_SOURCES = ("files", "dns")

_lock = threading.Lock()
_current: tuple[tuple[tuple[int, int, int], ...], Path] | None = None


def _fingerprint(etc: Path) -> tuple[tuple[int, int, int], ...]:
    """(mtime_ns, size, inode) of each source, following links (resolv.conf often is one); zeros if absent."""
    found = []
    for name in ETC_FILES:
        try:
            st = (etc / name).stat()
        except OSError:
            found.append((0, 0, 0))
            continue
        found.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(found)


def sandbox_nsswitch(text: str) -> str:
    """`nsswitch.conf` with only NSS_SOURCES left on each database's line (`files` where none is left)."""
    out = []
    for line in text.splitlines():
        database, colon, rest = line.partition(":")
        if not colon or line.lstrip().startswith("#"):
            out.append(line)
            continue
        kept = [w for w in rest.split() if w in NSS_SOURCES]  # drops `[NOTFOUND=return]`-style actions too
        out.append(f"{database}: {' '.join(kept or ['files'])}")
    return "\n".join(out) + "\n"


def _copy(etc: Path, root: Path) -> None:
    """Copies of ETC_FILES in `root` (directories with their links kept as links), nsswitch.conf trimmed."""
    for name in ETC_FILES:
        source = etc / name
        try:
            if source.is_dir():
                shutil.copytree(source, root / name, symlinks=True, ignore=shutil.ignore_patterns(*NEVER))
            elif name == "nsswitch.conf" and source.exists():
                (root / name).write_text(sandbox_nsswitch(source.read_text(encoding="utf-8", errors="replace")))
                (root / name).chmod(0o644)
            elif source.exists():
                shutil.copy2(source, root / name)
        except OSError:  # unreadable or vanished under us: the sandbox does without it, as --ro-bind-try did
            continue


def _ours(path: Path) -> bool:
    """Whether `path` is a real directory of this user's that nobody else may write (/tmp is everyone's)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _snapshot(etc: Path, fingerprint: tuple[tuple[int, int, int], ...]) -> Path:
    """The snapshot for this fingerprint: shared by every process of this user, made once (renamed into place).

    Named by the fingerprint, so worker restarts reuse it instead of each
    leaving a copy behind; one that is not ours (someone else's, in /tmp) is
    never used: a fresh private one is made instead.
    """
    digest = hashlib.sha256(repr((str(etc), fingerprint, NSS_SOURCES)).encode()).hexdigest()[:16]
    final = Path(tempfile.gettempdir()) / f"attune-etc-{os.geteuid()}-{digest}"
    if _ours(final):
        return final
    staging = Path(tempfile.mkdtemp(prefix="attune-etc-staging-"))
    staging.chmod(0o755)
    _copy(etc, staging)
    try:
        os.rename(staging, final)  # atomic; fails if another process got there first (or someone else's is there)
    except OSError:
        if _ours(final):
            shutil.rmtree(staging, ignore_errors=True)
            return final
        return staging  # a squatter's name: this process keeps its own copy
    return final


def etc_dir(etc: Path = ETC) -> Path:
    """The snapshot of `etc`'s sandbox files, made now if there is none or the host's files changed."""
    global _current
    fingerprint = _fingerprint(etc)
    with _lock:
        # gone too (a /tmp cleaner): a bind of a missing dir would fail every start
        if _current is None or _current[0] != fingerprint or not _current[1].is_dir():
            _current = (fingerprint, _snapshot(etc, fingerprint))
        return _current[1]

"""A pack directory as the archive `attune pack register` uploads.

The server accepts regular files only and refuses links, so the CLI decides
here what a link means: one that stays inside the pack is uploaded as the
file it points to, one that leaves the pack (or an absolute path, or a loop)
is refused with the path, before anything is sent. Version-control and build
clutter (`.git`, `__pycache__`, `node_modules`, virtualenvs) is left out:
the platform installs `requirements.txt` and `package.json` itself.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from chalicelib.core.errors import AttuneError
from chalicelib.core.pack_archive import MANIFEST_NAMES, Files, build_archive, check_files, clean_path

SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv",
                          ".mypy_cache", ".pytest_cache", ".ruff_cache"})
SKIPPED_SUFFIXES = (".pyc", ".pyo", "~")
SKIPPED_NAMES = frozenset({".DS_Store"})


class PackDirError(ValueError):
    """A pack directory that cannot be uploaded as it is; the message names the path and the fix."""


def _inside(root: Path, path: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _skipped(rel: PurePosixPath) -> bool:
    return (any(part in SKIPPED_DIRS for part in rel.parts[:-1]) or rel.name in SKIPPED_NAMES
            or rel.name.endswith(SKIPPED_SUFFIXES))


def read_pack_dir(directory: Path) -> Files:
    """Every file of the pack, by its path from the pack root; links inside followed, links out refused."""
    root = directory.resolve()
    if not root.is_dir():
        raise PackDirError(f"{directory}: not a directory")
    if not any((root / name).is_file() for name in MANIFEST_NAMES):
        raise PackDirError(f"{directory}: no pack.yaml (a pack directory starts with pack.yaml: ref, version, ...)")
    files: Files = {}
    for current, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(current)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        for name in [*dirnames, *filenames]:
            path = here / name
            rel = PurePosixPath(path.relative_to(root).as_posix())
            if _skipped(rel) or not path.is_symlink():
                continue
            target = os.readlink(path)
            resolved = path.resolve()
            if os.path.isabs(target) and not _inside(root, resolved):
                raise PackDirError(f"{rel}: a symbolic link to the absolute path {target!r}, outside the pack; "
                                   "copy the file into the pack instead")
            if not _inside(root, resolved):
                raise PackDirError(f"{rel}: a symbolic link to {target!r}, which leaves the pack directory; "
                                   "copy the file into the pack instead")
            if resolved.is_dir():
                raise PackDirError(f"{rel}: a symbolic link to a directory; only links to files are followed")
            if not resolved.is_file():
                raise PackDirError(f"{rel}: a symbolic link to {target!r}, which is not a file (broken link?)")
        for name in sorted(filenames):
            path = here / name
            rel = PurePosixPath(path.relative_to(root).as_posix())
            if _skipped(rel):
                continue
            if not path.is_file():
                raise PackDirError(f"{rel}: not a regular file (a device, socket or FIFO); remove it from the pack")
            files[_pack_path(rel)] = path.read_bytes()
    _check(files)
    return files


def _pack_path(rel: PurePosixPath) -> str:
    raw = rel.as_posix()
    if raw.startswith("/"):
        raise PackDirError(f"{raw}: an absolute path; every file must be under the pack directory")
    try:
        return clean_path(raw)
    except AttuneError as exc:
        raise PackDirError(exc.message) from exc


def _check(files: Files) -> None:
    try:
        check_files(files)
    except AttuneError as exc:
        raise PackDirError(exc.message) from exc


def pack_archive(directory: Path) -> bytes:
    """The pack directory as a reproducible tar.gz (the bytes depend on the files only)."""
    return build_archive(read_pack_dir(directory))

"""System packs: every folder under the repository's `packs/` registered for all tenants.

The local cloud's supervisor calls `load_system_packs()` at start (a
deployment calls it from its post-deploy step), so it must be idempotent:
unchanged packs are left alone, changed ones become a new version, with a new
S3 object, exactly as a tenant's reload would. When files changed but
`pack.yaml` still names the stored version, the patch number is bumped, so
that a running execution never sees its code replaced under the same key. An
unchanged pack whose object is missing (an emulator or a bucket that lost its
objects) is uploaded again under its stored key: the archive is reproducible,
so the bytes are the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from chalicelib.aws import storage
from chalicelib.core.errors import ValidationFailed
from chalicelib.core.pack_archive import Files, check_files, clean_path
from chalicelib.core.packs import PackIdentity, file_index, read_manifest
from chalicelib.core.versions import bump_patch, is_newer
from chalicelib.db import packs as pack_rows
from chalicelib.db.pool import Cursor, system_tx
from chalicelib.packs import LoadedPack, install, load

log = logging.getLogger("attune.packs")
SYSTEM_ACTOR = "system:bootstrap"
PACKS_DIR = Path(__file__).resolve().parents[2] / "packs"
_SKIPPED = {"__pycache__", ".git", ".DS_Store"}


@dataclass(frozen=True)
class SystemPackResult:
    """What loading did to one system pack: `registered`, `reloaded`, `restored` or `unchanged`."""

    ref: str
    version: str
    outcome: str


def read_pack_dir(root: Path) -> Files:
    """A pack folder as a file map; links are refused rather than followed out of the pack."""
    files: Files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in _SKIPPED or part.endswith(".pyc") for part in rel.parts):
            continue
        if path.is_symlink():
            raise ValidationFailed(f"{path}: system packs may not contain symbolic links")
        if path.is_file():
            files[clean_path(rel.as_posix())] = path.read_bytes()
    check_files(files)
    return files


def _load_one(cur: Cursor, folder: Path) -> SystemPackResult:
    files = read_pack_dir(folder)
    manifest = read_manifest(files)
    pack = load(files, ref=None if manifest and manifest.ref else folder.name, version=None)
    ident = pack.identity
    existing = pack_rows.system_pack(cur, ident.ref)
    if existing is None:
        row, _ = install(cur, None, pack, actor=SYSTEM_ACTOR)
        return SystemPackResult(ident.ref, row["version"], "registered")
    if existing["files"] == file_index(files, pack.actions) and existing["label"] == ident.label \
            and existing["description"] == ident.description:
        if storage.pack_exists(existing["storage_key"]):
            return SystemPackResult(ident.ref, existing["version"], "unchanged")
        log.warning("system pack %s %s: its files were missing from storage; uploading them again",
                    ident.ref, existing["version"])
        storage.put_pack(existing["storage_key"], files)
        return SystemPackResult(ident.ref, existing["version"], "restored")
    version = ident.version
    if not is_newer(version, existing["version"]):
        version = bump_patch(existing["version"])
        log.warning(
            "system pack %s changed but pack.yaml still says %s; installing it as %s",
            ident.ref, ident.version, version,
        )
    pack = LoadedPack(PackIdentity(ident.ref, version, ident.label, ident.description), pack.files, pack.actions)
    row, changes = install(cur, None, pack, actor=SYSTEM_ACTOR, existing=existing)
    log.info("system pack %s reloaded as %s: %s", ident.ref, version, changes)
    return SystemPackResult(ident.ref, row["version"], "reloaded")


def load_system_packs(cur: Cursor | None = None, root: Path | None = None) -> list[SystemPackResult]:
    """Register or update every pack folder under `root` (default: the repo's `packs/`).

    Runs in the caller's system transaction when given one, else in its own;
    a broken system pack raises (naming the file) so the platform does not
    start half-provisioned.
    """
    base = root or PACKS_DIR
    folders = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if cur is None:
        with system_tx() as own:
            return _load_all(own, folders)
    return _load_all(cur, folders)


def _load_all(cur: Cursor, folders: list[Path]) -> list[SystemPackResult]:
    pack_rows.lock_system_packs(cur)
    results = []
    for folder in folders:
        try:
            results.append(_load_one(cur, folder))
        except ValidationFailed as exc:
            raise ValidationFailed(f"system pack {folder.name}: {exc.message}") from exc
    for result in results:
        log.info("system pack %s %s (version %s)", result.ref, result.outcome, result.version)
    return results


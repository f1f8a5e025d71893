"""Keeps the local emulator's state across restarts: KMS keys and pack files.

moto holds everything in memory. A restarted `attune dev` (or a moto child
killed and started again) would get a new KMS key, so every encrypted datastore
item in the persistent embedded database would become unreadable, and an empty
pack bucket, so every action registered before would fail with "pack files
not found". Running inside the moto child process, this module:

- saves each KMS key's id, material and aliases to `<data_dir>/moto-kms.json`
  whenever they change (moto cannot import key material, so the keys are put
  back into its backend before it serves);
- mirrors the objects of the kept S3 buckets (the pack bucket) into
  `<data_dir>/moto-s3/`, written through synchronously inside moto's own
  `put_object`/`delete_object` before the request is answered, so an upload
  the API acknowledged is on disk even if moto is killed a moment later; at
  start the mirror is loaded back into the backend before moto serves.

Hooking the backend rather than polling it (as for the rarely changing KMS
keys) leaves no window in which an acknowledged upload exists only in memory.
Only the local emulator is touched: real KMS and S3 need none of this.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _backends() -> Any:
    from moto.kms.models import kms_backends

    return kms_backends


def snapshot() -> list[dict[str, Any]]:
    """Every customer key moto holds, with what is needed to recreate it."""
    keys = []
    for account_id, regions in _backends().items():
        for region, backend in regions.items():
            for key in backend.keys.values():
                keys.append(
                    {
                        "account_id": account_id,
                        "region": region,
                        "id": key.id,
                        "material": base64.b64encode(key.key_material).decode(),
                        "description": key.description,
                        "key_usage": key.key_usage,
                        "key_spec": key.key_spec,
                        "origin": key.origin,
                        "policy": key.policy,
                        "aliases": sorted(key.aliases),
                        # Provisioning finds the stack's key by its tags: without them, every
                        # restart made (and kept) one more key.
                        "tags": backend.list_resource_tags(key.id).get("Tags", []),
                    }
                )
    return sorted(keys, key=lambda k: (k["account_id"], k["region"], k["id"]))


def restore(path: Path) -> int:
    """Recreate the saved keys (same ids, same material, same aliases); how many."""
    if not path.exists():
        return 0
    saved = json.loads(path.read_text())
    for item in saved:
        backend = _backends()[item["account_id"]][item["region"]]
        key = backend.create_key(
            item["policy"], item["key_usage"], item["key_spec"], item["description"], None, False, item["origin"]
        )
        backend.keys.pop(key.id)
        key.arn = key.arn.replace(key.id, item["id"])
        key.id = item["id"]
        key.key_material = base64.b64decode(item["material"])
        backend.keys[key.id] = key
        if item.get("tags"):  # files saved before tags were kept have none
            backend.tagger.tag_resource(key.id, item["tags"])
        for alias in item["aliases"]:
            backend.create_alias(key.id, alias)
    return len(saved)


def _save_if_changed(path: Path, last: str | None) -> str:
    current = json.dumps(snapshot(), indent=1)
    if current != last:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(current)
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    return current


def keep(path: Path, interval: float = 0.5) -> None:
    """Restore now, then save changes in a daemon thread for as long as moto runs."""
    # Import moto's KMS backend here, on the main thread, before moto.server is imported:
    # importing it first from the saver thread races moto's own imports (a circular-import failure).
    _backends()
    count = restore(path)
    if count:
        log.info("restored %d local KMS key(s) from %s", count, path)
    state = {"last": json.dumps(snapshot(), indent=1) if count else None}

    def loop() -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            try:
                state["last"] = _save_if_changed(path, state["last"])
            except (OSError, RuntimeError) as exc:  # dict changed size mid-iteration: next round
                log.warning("could not save local KMS keys: %s", exc)

    threading.Thread(target=loop, name="kms-state", daemon=True).start()


# ------------------------------------------------------------------ S3 --

S3_DIR_NAME = "moto-s3"


def _s3_backend_class() -> Any:
    from moto.s3.models import S3Backend

    return S3Backend


def _s3_backend(account_id: str) -> Any:
    from moto.s3.models import s3_backends

    # S3 is a global service: moto keys its backends by partition, not region.
    return s3_backends[account_id]["aws"]


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a unique temporary file and rename, so a killed moto never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class S3Mirror:
    """The current object of every key of the kept buckets, as files under `root`.

    One pair per object: `<sha256(key)>.bin` (the bytes) and `<sha256(key)>.json`
    (bucket, key, account, region). Keys are hashed because S3 keys may hold
    anything a file name may not. The body is written before its description and
    the description removed before the body, so a restore never finds a
    description without its bytes. Only bytes are kept: object metadata is
    applied after `put_object` returns and nothing in Attune reads it.
    """

    def __init__(self, root: Path, buckets: Collection[str]) -> None:
        self.root = root
        self.buckets = frozenset(buckets)
        self._lock = threading.Lock()

    def _paths(self, bucket: str, key: str) -> tuple[Path, Path]:
        folder = self.root / bucket
        digest = hashlib.sha256(key.encode()).hexdigest()
        return folder / f"{digest}.bin", folder / f"{digest}.json"

    def sync(self, backend: Any, bucket_name: str, key_name: str) -> None:
        """Make the mirror of one key match what moto now serves for it (an object, or nothing)."""
        if bucket_name not in self.buckets:
            return
        from moto.s3.models import FakeKey

        found = backend.buckets.get(bucket_name)
        current = found.keys.get(key_name) if found is not None else None
        body_path, meta_path = self._paths(bucket_name, key_name)
        with self._lock:
            if isinstance(current, FakeKey):  # not a delete marker
                body_path.parent.mkdir(parents=True, exist_ok=True)
                _atomic_write(body_path, current.value)
                meta = {"bucket": bucket_name, "key": key_name, "account_id": backend.account_id,
                        "region": found.region_name}
                _atomic_write(meta_path, json.dumps(meta).encode())
            else:
                meta_path.unlink(missing_ok=True)
                body_path.unlink(missing_ok=True)

    def restore(self) -> int:
        """Put every mirrored object back (creating its bucket first); how many."""
        count = 0
        for meta_path in sorted(self.root.glob("*/*.json")):
            meta = json.loads(meta_path.read_text())
            body_path = meta_path.with_suffix(".bin")
            if meta["bucket"] not in self.buckets or not body_path.exists():
                continue
            backend = _s3_backend(meta["account_id"])
            if meta["bucket"] not in backend.buckets:
                backend.create_bucket(meta["bucket"], meta["region"])
            backend.put_object(meta["bucket"], meta["key"], body_path.read_bytes())
            count += 1
        return count

    def install(self) -> None:
        """Wrap moto's S3 writes so that each one is mirrored before moto answers.

        `copy_object`, `complete_multipart_upload` and `delete_objects` go through
        these two methods, so every way an object appears or goes is covered. A
        failed mirror write fails the request (moto answers 500): better than an
        acknowledged upload that the next restart loses.
        """
        backend_class = _s3_backend_class()
        mirror = self

        def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
            def mirrored(backend: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
                result = original(backend, bucket_name, key_name, *args, **kwargs)
                try:
                    mirror.sync(backend, bucket_name, key_name)
                except OSError:
                    log.exception("could not mirror s3://%s/%s to %s", bucket_name, key_name, mirror.root)
                    raise
                return result

            return mirrored

        backend_class.put_object = wrap(backend_class.put_object)
        backend_class.delete_object = wrap(backend_class.delete_object)


def keep_s3(root: Path, buckets: Collection[str]) -> S3Mirror:
    """Restore the kept buckets' objects from `root`, then mirror every later change there."""
    mirror = S3Mirror(root, buckets)
    count = mirror.restore()  # before install(): restoring must not rewrite the mirror
    if count:
        log.info("restored %d local S3 object(s) from %s", count, root)
    mirror.install()
    return mirror


SECRETS_FILE = "moto-secrets.json"


def remembered_secret(state_dir: Path, name: str, make: Callable[[], str]) -> str:
    """The value a local secret had before the emulator restarted, else a new one from `make`, kept.

    moto forgets its secrets on exit, and the JWT signing key is one: a new
    key at every `make run` logged every user out. The values live in
    `<data_dir>/moto-secrets.json` (mode 0600), beside the KMS keys, where
    tenant code (sandboxed, without the data dir) cannot read them.
    """
    path = state_dir / SECRETS_FILE
    saved: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if name not in saved:
        saved[name] = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(saved, out)
        os.replace(path.with_suffix(".tmp"), path)
    return saved[name]

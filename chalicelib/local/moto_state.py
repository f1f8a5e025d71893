"""Keeps the local KMS keys across restarts of the local cloud.

moto holds everything in memory and has no way to import key material, so a
restarted `attune dev` would get a new KMS key, and every encrypted datastore
item in the (persistent) embedded database would become unreadable. Running
inside the moto child process, this module saves each KMS key's id, material
and aliases to `<data_dir>/moto-kms.json` whenever they change, and puts them
back into moto's backend before it serves. Only the local emulator is touched;
real KMS never exposes key material and needs none of this.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
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

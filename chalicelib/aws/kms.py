"""KMS envelope encryption: per-item data keys, wrapped under the stack's key.

`generate_data_key` asks KMS for a fresh AES-256 key and gets it back twice:
in plaintext (used once to seal, then dropped) and wrapped by the stack's KMS
key (`names.data_key_alias()`), which is what the database stores. `unwrap`
sends the wrapped blob back to KMS. Both pass the encryption context
`{"tenant_id": "<id>"}`: KMS authenticates it with the wrapped key, so a
wrapped key copied into another tenant's row fails to unwrap there.

Decrypt does not name the KMS key: the wrapped blob carries its key id, and
pinning the alias would break every existing item the day the alias is
pointed at a new key (manual rotation). IAM restricts `kms:Decrypt` to the
stack's key(s), which is the guard a `KeyId` would otherwise add.

Unwrapped keys are cached in-process (bounded LRU, short TTL), keyed by
(tenant, wrapped blob). Trade-off: a warm Lambda or worker that reads the
same secret repeatedly skips a KMS round trip (latency, cost, throttling),
at the price of holding up to `CACHE_SIZE` plaintext data keys in memory
for up to `CACHE_TTL_SECONDS`, and of a revoked KMS grant taking up to that
long to bite in a process that already has the key. The tenant is part of
the cache key so a cache hit never skips KMS's encryption-context check.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import names
from chalicelib.aws.clients import client
from chalicelib.core.crypto import KEY_BYTES, DecryptionFailed
from chalicelib.core.errors import ServiceUnavailable

CACHE_SIZE = 256
CACHE_TTL_SECONDS = 300.0
KEY_SPEC = "AES_256"

# KMS's answers for "this blob cannot be opened here", as opposed to "KMS is down".
_UNOPENABLE = frozenset({"InvalidCiphertextException", "IncorrectKeyException", "InvalidKeyUsageException"})

_lock = threading.Lock()
_cache: OrderedDict[tuple[int, bytes], tuple[float, bytes]] = OrderedDict()


@dataclass(frozen=True)
class DataKey:
    """A fresh data key: the plaintext to seal with, and the wrapped form to store."""

    plaintext: bytes = field(repr=False)
    wrapped: bytes


def encryption_context(tenant_id: int) -> dict[str, str]:
    """The KMS encryption context binding a wrapped key to its tenant (logged by CloudTrail)."""
    return {"tenant_id": str(tenant_id)}


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def generate_data_key(tenant_id: int) -> DataKey:
    """A new AES-256 data key for one item of `tenant_id`."""
    try:
        resp = client("kms").generate_data_key(
            KeyId=names.data_key_alias(),
            KeySpec=KEY_SPEC,
            EncryptionContext=encryption_context(tenant_id),
        )
    except ClientError as exc:
        raise ServiceUnavailable(
            f"cannot create a data key with KMS key {names.data_key_alias()}: {_error_code(exc)}"
        ) from exc
    except BotoCoreError as exc:
        raise ServiceUnavailable("KMS is unreachable; retry later") from exc
    plaintext = bytes(resp["Plaintext"])
    if len(plaintext) != KEY_BYTES:
        raise ServiceUnavailable(f"KMS returned a {len(plaintext)}-byte data key; expected {KEY_BYTES}")
    return DataKey(plaintext=plaintext, wrapped=bytes(resp["CiphertextBlob"]))


def _cached(entry: tuple[int, bytes]) -> bytes | None:
    with _lock:
        found = _cache.get(entry)
        if found is None:
            return None
        stored_at, plaintext = found
        if time.monotonic() - stored_at > CACHE_TTL_SECONDS:
            del _cache[entry]
            return None
        _cache.move_to_end(entry)
        return plaintext


def _remember(entry: tuple[int, bytes], plaintext: bytes) -> None:
    with _lock:
        _cache[entry] = (time.monotonic(), plaintext)
        _cache.move_to_end(entry)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)


def unwrap(tenant_id: int, wrapped: bytes) -> bytes:
    """The plaintext data key inside `wrapped`, if KMS agrees it belongs to `tenant_id`."""
    entry = (tenant_id, bytes(wrapped))
    found = _cached(entry)
    if found is not None:
        return found
    try:
        resp = client("kms").decrypt(CiphertextBlob=entry[1], EncryptionContext=encryption_context(tenant_id))
    except ClientError as exc:
        code = _error_code(exc)
        if code in _UNOPENABLE:
            raise DecryptionFailed(
                "the stored data key cannot be unwrapped for this tenant: "
                "it was altered, copied from another tenant, or wrapped by another KMS key"
            ) from exc
        raise ServiceUnavailable(f"KMS refused to unwrap a data key: {code}") from exc
    except BotoCoreError as exc:
        raise ServiceUnavailable("KMS is unreachable; retry later") from exc
    plaintext = bytes(resp["Plaintext"])
    _remember(entry, plaintext)
    return plaintext


def clear_cache() -> None:
    """Drop every cached data key (tests; a process that wants to forget secrets now)."""
    with _lock:
        _cache.clear()

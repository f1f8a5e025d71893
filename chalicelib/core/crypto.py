"""AES-256-GCM sealing of datastore secrets under a per-item data key.

Pure: the caller supplies the plaintext data key (unwrapped by KMS in
`chalicelib.aws.kms`), so this module never does I/O and is unit-tested
without AWS. Envelope encryption means the database holds only the sealed
blob and the KMS-wrapped data key; the key that wraps it never leaves KMS.

Blob format, version 1 (all lengths fixed so parsing cannot be confused):

    +---------+------------------+---------------------------------+
    | 0x01    | nonce (12 bytes) | ciphertext || GCM tag (16 bytes)|
    +---------+------------------+---------------------------------+

The associated data authenticated with every blob is the header (version
and nonce) plus `associated_data(tenant_id, key)`, so a blob copied to
another row, key or tenant, or re-labelled with another version byte, fails
to open instead of decrypting to the wrong owner's secret.
"""

from __future__ import annotations

import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chalicelib.core.errors import Unprocessable

VERSION = 1
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the GCM standard nonce; random per seal, never reused under a key
TAG_BYTES = 16
HEADER_BYTES = 1 + NONCE_BYTES
MIN_BLOB_BYTES = HEADER_BYTES + TAG_BYTES
PURPOSE = "attune.datastore"


class DecryptionFailed(Unprocessable):
    """A stored secret cannot be opened: tampered, moved to another row or tenant, or its key is gone.

    It is a 422, not a 500: the request is fine but the stored item cannot be
    used, and the message must say so plainly instead of hiding behind
    "internal error".
    """

    code = "decryption_failed"


def associated_data(tenant_id: int, key: str) -> bytes:
    """The context a blob is bound to: which tenant's which key.

    JSON of a fixed-shape list is unambiguous (no separator a key could
    contain can make two different (tenant, key) pairs encode alike).
    """
    return json.dumps([PURPOSE, VERSION, tenant_id, key], separators=(",", ":")).encode("utf-8")


def _check_key(data_key: bytes) -> None:
    if len(data_key) != KEY_BYTES:
        raise ValueError(f"data key must be {KEY_BYTES} bytes (AES-256), got {len(data_key)}")


def seal(data_key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate `plaintext`; returns the versioned blob.

    A fresh random nonce per call: with one data key per item and at most a
    handful of seals per key, the 96-bit random nonce has no practical
    collision risk.
    """
    _check_key(data_key)
    nonce = os.urandom(NONCE_BYTES)
    header = bytes([VERSION]) + nonce
    return header + AESGCM(data_key).encrypt(nonce, plaintext, header + aad)


def open_sealed(data_key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Verify and decrypt a blob made by `seal` with the same key and associated data.

    Every failure (unknown version, truncated blob, wrong key, altered bytes,
    other tenant or key) is one `DecryptionFailed`: telling them apart would
    help an attacker more than an operator, who gets the key name from the
    caller.
    """
    _check_key(data_key)
    if len(blob) < MIN_BLOB_BYTES:
        raise DecryptionFailed("stored secret is truncated or corrupt and cannot be decrypted")
    if blob[0] != VERSION:
        raise DecryptionFailed(f"stored secret has unknown format version {blob[0]}")
    header, body = blob[:HEADER_BYTES], blob[HEADER_BYTES:]
    try:
        return AESGCM(data_key).decrypt(header[1:], body, header + aad)
    except InvalidTag as exc:
        raise DecryptionFailed(
            "stored secret failed authentication: it was altered, or belongs to another key or tenant"
        ) from exc

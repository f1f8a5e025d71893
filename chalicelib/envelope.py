"""Envelope encryption of small secrets that live in one column (a webhook's HMAC secret).

The same scheme as encrypted datastore items (AES-256-GCM under a per-value
data key wrapped by KMS, bound to tenant and name), packed into one blob:
2-byte length of the wrapped key, the wrapped key, then the sealed value.
"""

from __future__ import annotations

import struct

from chalicelib.aws import kms
from chalicelib.core import crypto


def seal(tenant_id: int, name: str, plaintext: bytes) -> bytes:
    """Encrypt `plaintext` for `tenant_id` under a fresh KMS data key, bound to `name`."""
    data_key = kms.generate_data_key(tenant_id)
    sealed = crypto.seal(data_key.plaintext, plaintext, crypto.associated_data(tenant_id, name))
    return struct.pack(">H", len(data_key.wrapped)) + data_key.wrapped + sealed


def open_blob(tenant_id: int, name: str, blob: bytes) -> bytes:
    """Decrypt a blob made by `seal` for the same tenant and name."""
    blob = bytes(blob)
    (length,) = struct.unpack(">H", blob[:2])
    wrapped, sealed = blob[2 : 2 + length], blob[2 + length :]
    return crypto.open_sealed(kms.unwrap(tenant_id, wrapped), sealed, crypto.associated_data(tenant_id, name))

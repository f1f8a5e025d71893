"""AES-256-GCM sealing of datastore secrets: round trip, format, and every way a blob must fail."""

from __future__ import annotations

import os

import pytest

from chalicelib.core import crypto
from chalicelib.core.crypto import DecryptionFailed, associated_data, open_sealed, seal

KEY = bytes(range(32))
AAD = associated_data(7, "db/password")


def test_round_trip() -> None:
    # GIVEN a data key and a secret
    # WHEN it is sealed and opened with the same key and context
    blob = seal(KEY, b'{"user":"admin","pw":"s3cr3t"}', AAD)
    # THEN the plaintext comes back
    assert open_sealed(KEY, blob, AAD) == b'{"user":"admin","pw":"s3cr3t"}'


def test_blob_format_is_version_nonce_ciphertext_tag() -> None:
    # GIVEN a 10-byte plaintext
    blob = seal(KEY, b"0123456789", AAD)
    # THEN the blob is version byte + 12-byte nonce + 10 bytes + 16-byte tag, with no plaintext in it
    assert blob[0] == crypto.VERSION == 1
    assert len(blob) == 1 + 12 + 10 + 16
    assert b"0123456789" not in blob


def test_each_seal_uses_a_fresh_nonce() -> None:
    # GIVEN the same key, plaintext and context sealed twice
    a, b = seal(KEY, b"same", AAD), seal(KEY, b"same", AAD)
    # THEN nonces (and therefore ciphertexts) differ
    assert a[1:13] != b[1:13]
    assert a != b


def test_empty_plaintext_round_trips() -> None:
    blob = seal(KEY, b"", AAD)
    assert open_sealed(KEY, blob, AAD) == b""


@pytest.mark.parametrize("position", [1, 5, 13, -1])
def test_any_flipped_byte_fails(position: int) -> None:
    # GIVEN a sealed blob with one bit flipped in the nonce, ciphertext or tag
    blob = bytearray(seal(KEY, b"secret value", AAD))
    blob[position] ^= 0x01
    # WHEN it is opened THEN authentication fails with a clear, non-500 error
    with pytest.raises(DecryptionFailed) as info:
        open_sealed(KEY, bytes(blob), AAD)
    assert info.value.status == 422
    assert "altered" in info.value.message


def test_blob_moved_to_another_tenant_fails() -> None:
    # GIVEN a blob sealed for tenant 7's key "db/password"
    blob = seal(KEY, b"secret", AAD)
    # WHEN it is opened as tenant 8's item of the same name, even with the right data key
    # THEN it fails
    with pytest.raises(DecryptionFailed):
        open_sealed(KEY, blob, associated_data(8, "db/password"))


def test_blob_moved_to_another_key_fails() -> None:
    blob = seal(KEY, b"secret", AAD)
    with pytest.raises(DecryptionFailed):
        open_sealed(KEY, blob, associated_data(7, "db/password2"))


def test_wrong_data_key_fails() -> None:
    blob = seal(KEY, b"secret", AAD)
    with pytest.raises(DecryptionFailed):
        open_sealed(os.urandom(32), blob, AAD)


def test_version_byte_is_authenticated() -> None:
    # GIVEN a blob whose version byte is rewritten (a downgrade attempt)
    blob = seal(KEY, b"secret", AAD)
    forged = bytes([2]) + blob[1:]
    # THEN it is refused as an unknown format, not parsed under other rules
    with pytest.raises(DecryptionFailed, match="unknown format version 2"):
        open_sealed(KEY, forged, AAD)


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x01" + b"\x00" * 27])
def test_truncated_blob_fails_cleanly(blob: bytes) -> None:
    with pytest.raises(DecryptionFailed, match="truncated"):
        open_sealed(KEY, blob, AAD)


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33])
def test_only_256_bit_keys_are_accepted(size: int) -> None:
    # GIVEN a key that is not AES-256 THEN sealing refuses rather than silently using AES-128/192
    with pytest.raises(ValueError, match="32 bytes"):
        seal(b"k" * size, b"x", AAD)


def test_associated_data_is_unambiguous() -> None:
    # GIVEN pairs that naive concatenation would encode alike
    # THEN their associated data differ
    assert associated_data(1, "23:x") != associated_data(12, "3:x")
    assert associated_data(1, "a") != associated_data(1, "a ")

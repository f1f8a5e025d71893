"""After start-up the supervisor lets go of what provisioning held (cloud._release_start_up_memory)."""

from __future__ import annotations

import ctypes

import pytest

from chalicelib.aws import clients
from chalicelib.local import cloud


def test_the_provisioning_clients_are_dropped_and_a_missing_glibc_is_no_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a cached client, as provisioning leaves one, on a system without glibc (macOS, musl)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    clients.client("sqs")
    assert clients._clients

    def no_glibc(name: str) -> None:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_glibc)
    # WHEN the supervisor releases its start-up memory THEN no client is cached any more, and nothing raised
    cloud._release_start_up_memory()
    assert clients._clients == {}

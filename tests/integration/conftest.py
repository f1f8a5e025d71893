"""Fixtures shared by the integration tests that run the process worker in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.worker import service


@pytest.fixture
def worker_env(api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh process worker for this test: its own pack cache, quick heartbeats and kill grace."""
    monkeypatch.setenv("ATTUNE_PACK_CACHE_DIR", str(tmp_path / "packs"))
    monkeypatch.setenv("ATTUNE_HEARTBEAT_SECONDS", "0.2")
    monkeypatch.setenv("ATTUNE_ACTION_GRACE_SECONDS", "1")
    service.reset_worker()
    yield
    service.reset_worker(drain_seconds=5)

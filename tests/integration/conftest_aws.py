"""A real moto server for integration tests, and a polling helper.

Not a conftest.py (those belong to the suite's owners): test modules import
the fixtures they use from here (`from tests.integration.conftest_aws import
aws_stack_fixture, moto_server_fixture`), which registers them by their names
`aws_stack` and `moto_server`. One moto child process per test session
(per xdist worker); each test gets its own stack name, so tests share the
server without seeing each other's queues, buckets or schedules.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from chalicelib.aws.clients import reset_clients
from chalicelib.config import settings
from chalicelib.local import moto_server as moto

T = TypeVar("T")


@pytest.fixture(scope="session", name="moto_server")
def moto_server_fixture() -> Iterator[moto.MotoServer]:
    """moto's server as a child process on a free port, Step Functions execution on."""
    server = moto.start(moto.free_port())
    yield server
    server.stop()


@pytest.fixture(name="aws_stack")
def aws_stack_fixture(moto_server: moto.MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point `chalicelib.aws.clients` at moto under a stack name unique to this test."""
    stack = f"t{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("ATTUNE_STACK_NAME", stack)
    monkeypatch.delenv("ATTUNE_PACK_BUCKET", raising=False)
    settings.cache_clear()
    reset_clients()
    yield stack
    settings.cache_clear()
    reset_clients()


def eventually(check: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05,
               message: str = "condition") -> T:
    """Poll `check` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{message} not met within {timeout}s")
        time.sleep(interval)

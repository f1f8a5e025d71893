"""The python3 zygote's worker side without a sandbox: the pool's lifecycle, keys, uids and settings.

The real fork server against bwrap is tests/integration/test_python_zygote.py;
here zygotes are stand-ins, so the pool's rules (one per key, LRU bound, idle
and dead ones closed, old ones retired only once idle, one start per key at a
time from one long-lived thread) are checked on their own.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.runners import RunRequest, sandbox, zygote


class FakeZygote(zygote.Zygote):
    """A zygote with no process: alive until closed or killed."""

    def __init__(self, key: Any) -> None:
        self.key = key
        self.lock = threading.Lock()
        self.active = self.served = 0
        self.last_used = time.monotonic()
        self.broken = False
        self.closed = False
        self.started_on = threading.current_thread()

    def alive(self) -> bool:
        return not self.broken and not self.closed

    def close(self) -> None:
        self.closed = True


def _pool(**kwargs: Any) -> tuple[zygote.ZygotePool, list[FakeZygote]]:
    made: list[FakeZygote] = []

    def start(key: Any, *_args: Any) -> FakeZygote:
        z = FakeZygote(key)
        made.append(z)
        return z

    return zygote.ZygotePool(start=start, **kwargs), made


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_one_zygote_per_key_shared_by_its_executions() -> None:
    pool, made = _pool()
    a1, a2, b = pool.acquire("a"), pool.acquire("a"), pool.acquire("b")
    assert a1 is a2 and a1 is not b and len(made) == 2
    assert a1.active == 2 and a1.served == 2
    pool.release(a1)
    pool.release(a2)
    assert a1.active == 0 and not a1.closed


def test_zygotes_start_on_one_long_lived_thread_not_the_callers() -> None:
    # bwrap's --die-with-parent follows the parent thread: an execution's thread ends with it
    pool, made = _pool()
    threads = [threading.Thread(target=pool.acquire, args=(f"k{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len({z.started_on for z in made}) == 1
    assert made[0].started_on not in threads and made[0].started_on.is_alive()


def test_concurrent_first_uses_of_one_key_start_one_zygote() -> None:
    pool, made = _pool()
    got: list[zygote.Zygote] = []
    threads = [threading.Thread(target=lambda: got.append(pool.acquire("k"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(made) == 1 and len(got) == 8 and made[0].active == 8


def test_beyond_max_zygotes_the_least_recently_used_idle_one_is_closed() -> None:
    pool, _made = _pool(max_zygotes=2)
    busy = pool.acquire("busy")
    idle = pool.acquire("idle")
    pool.release(idle)
    third = pool.acquire("third")
    assert idle.closed and not busy.closed and not third.closed
    assert set(pool.zygotes) == {"busy", "third"}


def test_busy_zygotes_are_never_evicted_even_over_the_bound() -> None:
    pool, _made = _pool(max_zygotes=1)
    a, b = pool.acquire("a"), pool.acquire("b")
    assert not a.closed and not b.closed and len(pool.zygotes) == 2


def test_idle_zygotes_are_closed_by_the_sweep() -> None:
    pool, _made = _pool(idle_s=0.1)
    z = pool.acquire("k")
    pool.release(z)
    _wait_for(lambda: z.closed)  # the starter thread sweeps on its own
    assert not pool.zygotes
    assert pool.acquire("k") is not z


def test_a_dead_zygote_is_replaced_and_closed_once_released() -> None:
    pool, _made = _pool()
    z = pool.acquire("k")
    z.broken = True
    fresh = pool.acquire("k")
    assert fresh is not z and z.closed  # not alive: nothing of it to wait for
    pool.release(z)
    pool.release(fresh)
    assert pool.zygotes == {"k": fresh}


def test_an_old_zygote_is_retired_but_closed_only_after_its_last_execution() -> None:
    pool, _made = _pool(max_executions=2)
    first, second = pool.acquire("k"), pool.acquire("k")
    third = pool.acquire("k")
    assert first is second and third is not first
    assert not first.closed and first in pool.retiring
    pool.release(first)
    assert not first.closed
    pool.release(second)
    assert first.closed and not pool.retiring and pool.zygotes == {"k": third}


def test_a_failed_start_runs_cold_for_a_while_then_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def broken(key: Any, *_args: Any) -> zygote.Zygote:
        calls.append(key)
        raise zygote.ZygoteUnavailable("no interpreter")

    pool = zygote.ZygotePool(start=broken)
    with pytest.raises(zygote.ZygoteUnavailable):
        pool.acquire("k")
    with pytest.raises(zygote.ZygoteUnavailable, match="a moment ago"):
        pool.acquire("k")
    assert calls == ["k"]
    monkeypatch.setattr(zygote, "RETRY_AFTER_S", 0.0)
    with pytest.raises(zygote.ZygoteUnavailable, match="no interpreter"):
        pool.acquire("k")
    assert calls == ["k", "k"]


def test_a_closed_pool_closes_everything_and_starts_nothing() -> None:
    pool, _made = _pool(max_executions=1)
    old = pool.acquire("k")
    new = pool.acquire("k")  # `old` is retiring, busy
    pool.close()
    assert old.closed and new.closed
    with pytest.raises(zygote.ZygoteUnavailable):
        pool.acquire("k")


def test_the_setting_and_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATTUNE_ZYGOTE", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert zygote.enabled()
    for off in ("off", "OFF", "0", "false", " no "):
        monkeypatch.setenv("ATTUNE_ZYGOTE", off)
        assert not zygote.enabled()
    monkeypatch.setenv("ATTUNE_ZYGOTE", "on")
    assert zygote.enabled()
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "attune-runner")
    assert not zygote.enabled()


@pytest.mark.parametrize(("context", "tenant"), [
    ({"tenant_id": 7}, 7), ({}, None), ({"tenant_id": "7"}, None), ({"tenant_id": True}, None),
    ({"tenant_id": -1}, None),
])
def test_only_a_request_naming_its_tenant_gets_a_zygote(context: dict[str, Any], tenant: int | None) -> None:
    request = RunRequest(execution_id=1, runner_type="python3", parameters={}, code="", context=context)
    assert zygote.tenant_of(request) == tenant


def test_tenant_uids_are_their_own_range_and_never_shared_between_tenants() -> None:
    uids = {sandbox.zygote_uid(t) for t in range(0, sandbox.ZYGOTE_UIDS, 997)}
    assert len(uids) == len(range(0, sandbox.ZYGOTE_UIDS, 997))
    lowest = sandbox.BUILD_UID_BASE + sandbox.BUILD_UIDS  # above every execution's, sensor's and build's uid
    assert min(uids) >= lowest and max(uids) < lowest + sandbox.ZYGOTE_UIDS < 2**32 - 1
    assert sandbox.zygote_uid(5) == sandbox.zygote_uid(5)


def test_the_host_pid_comes_from_scm_credentials() -> None:
    # the receiver sets SO_PASSCRED; the sender names its own pid (the kernel checks and translates it)
    import os

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        theirs.sendmsg([b"S"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS,
                                 struct.pack("3i", os.getpid(), os.getuid(), os.getgid()))])
        msg, ancdata, _flags, _addr = ours.recvmsg(16, socket.CMSG_SPACE(12))
    assert msg == b"S" and zygote._cred_pid(ancdata) == os.getpid()
    assert zygote._cred_pid([]) is None

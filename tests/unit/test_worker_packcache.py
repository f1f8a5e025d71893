"""The pack cache: one fetch per storage key, never a half-unpacked pack, safe under threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from chalicelib.core.errors import ServiceUnavailable
from chalicelib.worker.packcache import PackCache


class SlowFetch:
    """A fake `fetch_pack` that counts calls, writes one file, and can be made to fail."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.fail = fail
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, key: str, dest: Path) -> Path:
        with self.lock:
            self.calls.append(key)
        (dest / "actions").mkdir(parents=True)
        (dest / "actions" / "run.sh").write_text(f"echo {key}\n")
        self.started.set()
        self.release.wait(5)
        if self.fail:
            raise ServiceUnavailable("pack storage is unavailable")
        return dest


def test_concurrent_requests_for_one_key_fetch_once(tmp_path: Path) -> None:
    # GIVEN a cache whose fetch takes a while
    fetch = SlowFetch()
    cache = PackCache(tmp_path, fetch)
    results: list[Path] = []

    def get() -> None:
        results.append(cache.get("tenants/1/packs/ops/1.0.0/pack.tar.gz"))

    # WHEN eight threads ask for the same pack at once
    threads = [threading.Thread(target=get) for _ in range(8)]
    for t in threads:
        t.start()
    assert fetch.started.wait(5)
    fetch.release.set()
    for t in threads:
        t.join(5)
    # THEN it was fetched once and everyone got the same complete directory
    assert len(fetch.calls) == 1 and cache.fetches == 1
    assert len(set(results)) == 1 and len(results) == 8
    assert (results[0] / "actions" / "run.sh").read_text() == "echo tenants/1/packs/ops/1.0.0/pack.tar.gz\n"
    # AND a later execution reuses it without fetching
    assert cache.get("tenants/1/packs/ops/1.0.0/pack.tar.gz") == results[0]
    assert len(fetch.calls) == 1


def test_a_failed_fetch_leaves_nothing_and_the_next_call_fetches_again(tmp_path: Path) -> None:
    # GIVEN storage that fails the first download
    fetch = SlowFetch(fail=True)
    fetch.release.set()
    cache = PackCache(tmp_path, fetch)
    # WHEN a pack is asked for
    with pytest.raises(ServiceUnavailable):
        cache.get("k1")
    # THEN no directory (partial or final) is left behind
    assert list(cache.root.iterdir()) == []
    # AND once storage works, the next call fetches and unpacks it
    fetch.fail = False
    path = cache.get("k1")
    assert (path / "actions" / "run.sh").is_file() and len(fetch.calls) == 2


def test_distinct_keys_get_distinct_directories_and_dead_workers_caches_are_swept(tmp_path: Path) -> None:
    # GIVEN the cache directory of a worker process that no longer exists
    dead = tmp_path / "w999999999-deadbeef"
    dead.mkdir()
    fetch = SlowFetch()
    fetch.release.set()
    cache = PackCache(tmp_path, fetch)
    # WHEN two versions are fetched
    one, two = cache.get("tenants/1/packs/ops/1.0.0/pack.tar.gz"), cache.get("tenants/1/packs/ops/1.0.1/pack.tar.gz")
    # THEN each has its own directory, the dead worker's cache is gone, and clear() removes ours
    assert one != two and one.parent == two.parent == cache.root
    assert not dead.exists()
    cache.clear()
    assert not cache.root.exists()

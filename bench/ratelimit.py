"""Rate-limiter overhead per request: the same call by an exempt admin and by a limited user.

Admins skip the limiter, so the difference between an admin's and a viewer's
`GET /api/v1/packs` (interleaved, one keep-alive connection each, paced below
the default limit so nothing is refused) is what the bucket costs a request
end to end; a second admin alongside shows how much of that is noise. When
the database is reachable (a cloud the bench started, or
ATTUNE_BENCH_DATABASE_URL), the limiter's statement is also timed alone: in
autocommit, as the API runs it, and wrapped in BEGIN/COMMIT for comparison,
against a `SELECT 1` round trip.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.api_latency import _summary
from chalicelib.db.ratelimits import TAKE_FROM_BUCKET

PASSWORD = "bench-password-123"  # noqa: S105 - a throwaway user of a throwaway cloud
ROUNDS_PER_S = 25.0  # the viewer's pace: half the default ATTUNE_RATE_LIMIT_PER_S (50)


def _client(url: str, username: str) -> httpx.Client:
    http = httpx.Client(base_url=url, timeout=30)
    resp = http.post("/auth/login", json={"username": username, "password": PASSWORD})
    resp.raise_for_status()
    http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
    return http


def _timed_get(http: httpx.Client, path: str) -> float:
    start = time.perf_counter()
    resp = http.get(path)
    took = (time.perf_counter() - start) * 1000
    if resp.status_code != 200:
        raise RuntimeError(f"GET {path} answered {resp.status_code}: {resp.text}")
    return took


def _http(url: str, rounds: int) -> dict[str, Any]:
    admin_name = f"bench-rl-{uuid.uuid4().hex[:8]}"
    boot = httpx.Client(base_url=url, timeout=30)
    for name in (admin_name, f"{admin_name}-b"):
        boot.post("/auth/register", json={"username": name, "password": PASSWORD}).raise_for_status()
    admin, control = _client(url, admin_name), _client(url, f"{admin_name}-b")
    viewer_name = f"{admin_name}-viewer"
    admin.post("/api/v1/users", json={"username": viewer_name, "password": PASSWORD, "role": "viewer"}
               ).raise_for_status()
    viewer = _client(url, viewer_name)
    clients = {"admin_exempt": admin, "admin_control": control, "viewer_limited": viewer}
    path = "/api/v1/packs"
    for _ in range(20):  # warm every connection and the statement caches
        for http in clients.values():
            _timed_get(http, path)
        time.sleep(1 / ROUNDS_PER_S)  # pacing below the limit, not waiting on the system
    samples: dict[str, list[float]] = {name: [] for name in clients}
    order = list(clients)
    start = time.perf_counter()
    for i in range(rounds):
        due = start + i / ROUNDS_PER_S
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        # Rotate who goes first, so none always meets a cold cache.
        for name in order[i % 3:] + order[:i % 3]:
            samples[name].append(_timed_get(clients[name], path))
    for http in (boot, *clients.values()):
        http.close()
    summary = {name: _summary(values) for name, values in samples.items()}
    admins_p50 = (summary["admin_exempt"]["p50_ms"] + summary["admin_control"]["p50_ms"]) / 2
    return {
        "endpoint": f"GET {path}",
        **summary,
        "overhead_p50_ms": round(summary["viewer_limited"]["p50_ms"] - admins_p50, 3),
        # Two exempt admins differ only by noise: an overhead below this is not measurable end to end here.
        "noise_p50_ms": round(abs(summary["admin_exempt"]["p50_ms"] - summary["admin_control"]["p50_ms"]), 3),
    }


def _database_url(data_dir: Path | None) -> str | None:
    given = os.environ.get("ATTUNE_BENCH_DATABASE_URL")
    if given:
        return given
    info = (data_dir / "cloud.json") if data_dir else None
    if info is None or not info.exists():
        return None
    url = json.loads(info.read_text()).get("database_url")
    return str(url) if url else None


def _statement(database_url: str, n: int) -> dict[str, Any]:
    key = f"bench:{uuid.uuid4().hex}"
    params = {"key": key, "interval_s": 1e-6, "burst": 10**9}  # never refuses: the cost of a granted token
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET ROLE attune_app")

        def timed(run: Callable[[], Any]) -> list[float]:
            for _ in range(50):
                run()
            samples = []
            for _ in range(n):
                start = time.perf_counter()
                run()
                samples.append((time.perf_counter() - start) * 1000)
            return samples

        def in_transaction() -> None:
            with conn.transaction():
                conn.execute(TAKE_FROM_BUCKET, params).fetchone()

        round_trip = timed(lambda: conn.execute("SELECT 1").fetchone())
        autocommit = timed(lambda: conn.execute(TAKE_FROM_BUCKET, params).fetchone())
        wrapped = timed(in_transaction)
        conn.execute("DELETE FROM attune.rate_limit WHERE key = %s", (key,))
    return {
        "select_1_round_trip": _summary(round_trip),
        "take_autocommit": _summary(autocommit),
        "take_in_begin_commit": _summary(wrapped),
    }


def run(url: str, data_dir: Path | None = None, rounds: int = 400, statements: int = 2000) -> dict[str, Any]:
    """Measure the limiter's cost per request; returns the JSON-able result."""
    results: dict[str, Any] = {"http": _http(url, rounds)}
    database_url = _database_url(data_dir)
    if database_url:
        results["statement"] = _statement(database_url, statements)
    else:
        results["statement"] = {"skipped": "no database URL (set ATTUNE_BENCH_DATABASE_URL)"}
    return {"benchmark": "ratelimit", "results": results}

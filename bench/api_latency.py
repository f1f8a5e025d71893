"""API latency of authenticated list and get calls against the running local cloud.

Sequential requests over one keep-alive connection, after a warm-up, so the
figure is the server's per-request cost (auth + tenant transaction + query +
JSON), not client concurrency.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

PASSWORD = "bench-password-123"  # noqa: S105 - a throwaway user of a throwaway cloud


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "p50_ms": round(_percentile(samples_ms, 0.50), 3),
        "p95_ms": round(_percentile(samples_ms, 0.95), 3),
        "p99_ms": round(_percentile(samples_ms, 0.99), 3),
        "mean_ms": round(statistics.fmean(samples_ms), 3),
        "max_ms": round(max(samples_ms), 3),
    }


def run(url: str, requests_per_endpoint: int = 500) -> dict[str, Any]:
    """Measure p50/p95/p99 per endpoint; returns the JSON-able result."""
    http = httpx.Client(base_url=url, timeout=30)
    username = f"bench-{uuid.uuid4().hex[:8]}"
    assert http.post("/auth/register", json={"username": username, "password": PASSWORD}).status_code == 201
    token = http.post("/auth/login", json={"username": username, "password": PASSWORD}).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    trigger_ids = [http.post("/api/v1/triggers", json={"type": "webhook"}).json()["id"] for _ in range(60)]
    rule_ids = [
        http.post("/api/v1/rules", json={"trigger_id": t, "action_ref": "core.echo"}).json()["id"]
        for t in trigger_ids[:30]
    ]
    endpoints: dict[str, Callable[[], str]] = {
        "GET /api/v1/triggers?limit=50": lambda: "/api/v1/triggers?limit=50",
        "GET /api/v1/triggers/{id}": lambda: f"/api/v1/triggers/{trigger_ids[0]}",
        "GET /api/v1/rules?limit=20": lambda: "/api/v1/rules?limit=20",
        "GET /api/v1/rules/{id}": lambda: f"/api/v1/rules/{rule_ids[0]}",
        "GET /api/v1/packs": lambda: "/api/v1/packs",
        "GET /api/v1/actions/core.echo": lambda: "/api/v1/actions/core.echo",
    }
    results: dict[str, Any] = {}
    everything: list[float] = []
    for name, path in endpoints.items():
        for _ in range(20):
            http.get(path())
        samples = []
        for _ in range(requests_per_endpoint):
            start = time.perf_counter()
            resp = http.get(path())
            samples.append((time.perf_counter() - start) * 1000)
            if resp.status_code != 200:
                raise RuntimeError(f"{name} answered {resp.status_code}: {resp.text}")
        results[name] = _summary(samples)
        everything += samples
    results["all"] = _summary(everything)
    return {"benchmark": "api_latency", "targets": {"seed_p95_ms": 100, "ours_p95_ms": 20}, "results": results}

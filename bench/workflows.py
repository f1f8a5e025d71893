"""Workflows on Step Functions: fan-out, long chains, many at once (issue 12's figures).

- with-items over 100 trivial items (`core.noop`, unlimited concurrency):
  wall time from the request to the workflow's `succeeded` (StackStorm's
  orquesta needs ~1550 s for 101 items; ours should be under 3 s);
- a 100-task sequential workflow: wall time and the overhead per task beyond
  the action's own run time (the children's `finished - started`);
- 50 concurrent workflows of 3 sequential tasks: all complete, wall time.

Wall times are measured from the client: the request's send to the first
poll that sees the final status (polls every 100 ms, so +<=100 ms).
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import httpx

PASSWORD = "bench-password-123"  # noqa: S105 - a throwaway user of a throwaway cloud
FINAL = {"succeeded", "succeeded_with_errors", "failed", "canceled"}
POLL_S = 0.1


def _login(url: str) -> httpx.Client:
    http = httpx.Client(base_url=url, timeout=60)
    username = f"bench-wf-{uuid.uuid4().hex[:8]}"
    assert http.post("/auth/register", json={"username": username, "password": PASSWORD}).status_code == 201
    token = http.post("/auth/login", json={"username": username, "password": PASSWORD}).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    return http


def _workflow(http: httpx.Client, ref: str, tasks: list[dict[str, Any]]) -> None:
    resp = http.post("/api/v1/actions", json={"ref": ref, "runner_type": "workflow", "workflow": {"tasks": tasks}})
    assert resp.status_code == 201, resp.text


def _start(http: httpx.Client, ref: str) -> int:
    resp = http.post("/api/v1/executions", json={"action_ref": ref, "parameters": {}})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _final(http: httpx.Client, ids: list[int], deadline_s: float) -> dict[int, str]:
    """Poll until every execution is final (or the deadline); id -> status."""
    left, done = set(ids), {}
    end = time.monotonic() + deadline_s
    while left and time.monotonic() < end:
        for execution_id in list(left):
            status = http.get(f"/api/v1/executions/{execution_id}").json()["status"]
            if status in FINAL:
                done[execution_id] = status
                left.discard(execution_id)
        if left:
            time.sleep(POLL_S)
    return done


def _timed(http: httpx.Client, ref: str, deadline_s: float) -> tuple[int, str, float]:
    started = time.monotonic()
    execution_id = _start(http, ref)
    status = _final(http, [execution_id], deadline_s).get(execution_id, "timeout")
    return execution_id, status, round(time.monotonic() - started, 3)


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _children(http: httpx.Client, execution_id: int) -> list[dict[str, Any]]:
    resp = http.get("/api/v1/executions", params={"parent_execution_id": execution_id, "limit": 1000})
    return list(resp.json()["items"])


def run(url: str, items: int = 100, chain: int = 100, concurrent: int = 50) -> dict[str, Any]:
    """The three figures, each on its own workflow action of one throwaway tenant."""
    http = _login(url)
    assert http.post("/api/v1/packs", json={"ref": "benchwf", "version": "1.0.0",
                                            "files": {"README.md": "workflow benchmark"}}).status_code == 201
    _workflow(http, "benchwf.fanout", [{"name": "each", "action": "core.noop", "with_items": list(range(items))}])
    _workflow(http, "benchwf.chain", [{"name": f"t{i}", "action": "core.noop",
                                       **({"depends_on": [f"t{i - 1}"]} if i else {})} for i in range(chain)])
    _workflow(http, "benchwf.three", [{"name": "a", "action": "core.noop"},
                                      {"name": "b", "action": "core.noop", "depends_on": ["a"]},
                                      {"name": "c", "action": "core.noop", "depends_on": ["b"]}])
    _timed(http, "benchwf.three", 60)  # warm: the state machines' first creation is not what we measure
    fan_id, fan_status, fan_s = _timed(http, "benchwf.fanout", 300)
    chain_id, chain_status, chain_s = _timed(http, "benchwf.chain", 600)
    kids = _children(http, chain_id)
    run_s = sum((_at(k["finished"]) - _at(k["started"])).total_seconds()
                for k in kids if k["started"] and k["finished"])
    started = time.monotonic()
    ids = [_start(http, "benchwf.three") for _ in range(concurrent)]
    statuses = _final(http, ids, 600)
    many_s = round(time.monotonic() - started, 3)
    return {
        "benchmark": "workflows",
        "with_items": {"items": items, "status": fan_status, "wall_s": fan_s, "target_s": 3.0,
                       "children": len(_children(http, fan_id))},
        "sequential": {"tasks": chain, "status": chain_status, "wall_s": chain_s, "children": len(kids),
                       "per_task_ms": round(chain_s / chain * 1000, 1),
                       "overhead_per_task_ms": round((chain_s - run_s) / chain * 1000, 1)},
        "concurrent": {"workflows": concurrent, "tasks_each": 3, "wall_s": many_s,
                       "succeeded": sum(1 for s in statuses.values() if s == "succeeded"),
                       "not_final": concurrent - len(statuses)},
    }

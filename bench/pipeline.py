"""Event pipeline latency (webhook → event → enforcement → execution → action) and sustained throughput.

Latency: webhook events for a rule running a trivial shell action
(`core.local` with `cmd: true`), sent at a modest paced rate (5/s, below what
one local worker sustains) so the figures are the pipeline's own, not
queueing behind a burst. Stages come from the
server's timestamps (PostgreSQL's clock, UTC, millisecond precision) and the
client's send time (`time.time()`, the same machine's clock):

- webhook→event: the 202 round trip of `POST /api/v1/webhooks/{id}`
- event→enforcement: `enforcement.created - event.created`
- enforcement→scheduled: the `execution.scheduled` audit entry - `enforcement.created`
- webhook→started: `execution.started - send time` (the action's process exists)
- webhook→succeeded: `execution.finished - send time`

Throughput: `POST /api/v1/executions` of the same action at a controlled rate
from a few client threads for a fixed window, bounded in count and time,
sampling every second the work queue's depth (SQS, through the cloud's AWS
endpoint) and the number of non-final executions; then the drain.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
import httpx
from botocore.exceptions import BotoCoreError, ClientError

from bench.api_latency import _summary

PASSWORD = "bench-password-123"  # noqa: S105 - a throwaway user of a throwaway cloud
# "A trivial shell action": a pack of the benchmark's own whose script does not even read its
# parameters, so the figure is the platform's cost, not an interpreter's start-up.
PACK_FILES = {
    "actions/ok.yaml": "name: ok\nrunner_type: shell\nentry_point: ok.sh\nparameters: {}\n",
    "actions/ok.sh": "#!/bin/sh\necho ok\n",
}
PARAMETERS: dict[str, Any] = {}
NON_FINAL = ("requested", "scheduled", "running")
FINAL = ("succeeded", "failed")
TARGETS = {
    "seed_webhook_to_event_p95_ms": 50,
    "seed_trigger_to_execution_p95_ms": 1000,
    "seed_exec_per_s": 100,
    "ours_webhook_to_succeeded_p95_ms": 250,
    "ours_exec_per_s": 200,
}


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _wait(probe: Any, what: str, timeout: float, every: float = 0.25) -> Any:
    """Call `probe` every `every` seconds until it returns something truthy; raise on the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


class Api:
    """An authenticated client for one throwaway tenant."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.http = self.client()
        self.action = "core.noop"

    @classmethod
    def register(cls, url: str) -> Api:
        """A new tenant admin, logged in."""
        with httpx.Client(base_url=url, timeout=30) as http:
            username = f"bench-pipe-{uuid.uuid4().hex[:8]}"
            resp = http.post("/auth/register", json={"username": username, "password": PASSWORD})
            if resp.status_code != 201:
                raise RuntimeError(f"register answered {resp.status_code}: {resp.text}")
            login = http.post("/auth/login", json={"username": username, "password": PASSWORD})
            api = cls(url, str(login.json()["access_token"]))
            ref = f"bench_{uuid.uuid4().hex[:8]}"
            api.ok("POST", "/api/v1/packs", json={"ref": ref, "version": "1.0.0", "files": PACK_FILES})
            api.action = f"{ref}.ok"
            return api

    def client(self) -> httpx.Client:
        """A separate connection with the same token (one per sender thread)."""
        return httpx.Client(base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {self.token}"})

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.http.request(method, path, **kwargs)
        if resp.status_code >= 300:
            raise RuntimeError(f"{method} {path} answered {resp.status_code}: {resp.text}")
        return resp.json()

    def total(self, path: str, **params: Any) -> int:
        return int(self.ok("GET", path, params={**params, "limit": 1})["total"])

    def all_items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.ok("GET", path, params={**params, "limit": 1000, "offset": offset})
            out += page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return out

    def finished(self) -> int:
        return sum(self.total("/api/v1/executions", status=s, action_ref=self.action) for s in FINAL)

    def non_final(self) -> int:
        return sum(self.total("/api/v1/executions", status=s, action_ref=self.action) for s in NON_FINAL)


# -- latency ---------------------------------------------------------------------------------------------------------


@dataclass
class Sent:
    event_id: int
    sent_at: float
    round_trip_ms: float


def _fire(api: Api, trigger_id: int, count: int, rate: float) -> list[Sent]:
    """POST `count` webhook events at `rate` per second, without a bearer token, as an outside system would."""
    hook = httpx.Client(base_url=api.url, timeout=30)
    sent: list[Sent] = []
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)  # client-side pacing, not waiting on the system
        wall, t0 = time.time(), time.perf_counter()
        resp = hook.post(f"/api/v1/webhooks/{trigger_id}", json={"i": i, "host": "bench"})
        rt = (time.perf_counter() - t0) * 1000
        if resp.status_code != 202:
            raise RuntimeError(f"webhook answered {resp.status_code}: {resp.text}")
        sent.append(Sent(int(resp.json()["event_id"]), wall, rt))
    hook.close()
    return sent


def _latency(api: Api, events: int, rate: float, drain_s: float) -> dict[str, Any]:
    trigger = api.ok("POST", "/api/v1/triggers", json={"type": "webhook"})
    api.ok(
        "POST", "/api/v1/rules", json={"trigger_id": trigger["id"], "action_ref": api.action, "parameters": PARAMETERS}
    )
    warmup = 10
    _fire(api, trigger["id"], warmup, rate)
    _wait(lambda: api.finished() >= warmup, "the warm-up executions", drain_s)
    sent = _fire(api, trigger["id"], events, rate)
    _wait(lambda: api.finished() >= warmup + events, f"{events} executions to finish", drain_s)

    event_created = {e["id"]: _epoch(e["created"]) for e in api.all_items("/api/v1/events", trigger_id=trigger["id"])}
    by_event = {e["event_id"]: e for e in api.all_items("/api/v1/enforcements", trigger_id=trigger["id"])}
    by_enforcement = {x["enforcement_id"]: x for x in api.all_items("/api/v1/executions", action_ref=api.action)}
    scheduled_at = {
        int(a["entity_id"]): _epoch(a["at"])
        for a in api.all_items("/api/v1/audit", entity_type="execution", action="execution.scheduled")
    }
    stages: dict[str, list[float]] = {
        "webhook_to_event": [],
        "event_to_enforcement": [],
        "enforcement_to_scheduled": [],
        "webhook_to_started": [],
        "webhook_to_succeeded": [],
    }
    failed = 0
    for s in sent:
        enforcement = by_event[s.event_id]
        execution = by_enforcement[enforcement["id"]]
        if execution["status"] != "succeeded":
            failed += 1
            continue
        enforced = _epoch(enforcement["created"])
        stages["webhook_to_event"].append(s.round_trip_ms)
        stages["event_to_enforcement"].append((enforced - event_created[s.event_id]) * 1000)
        stages["enforcement_to_scheduled"].append((scheduled_at[execution["id"]] - enforced) * 1000)
        stages["webhook_to_started"].append((_epoch(execution["started"]) - s.sent_at) * 1000)
        stages["webhook_to_succeeded"].append((_epoch(execution["finished"]) - s.sent_at) * 1000)
    result: dict[str, Any] = {name: _summary(samples) for name, samples in stages.items() if samples}
    result.update(events=events, rate_per_s=rate, failed_executions=failed)
    return result


# -- throughput ------------------------------------------------------------------------------------------------------


@dataclass
class Sender:
    """One client thread's tally."""

    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)


def _send(api: Api, tally: Sender, *, start: float, stop_at: float, period: float, offset: float, cap: int) -> None:
    client = api.client()
    body = {"action_ref": api.action, "parameters": PARAMETERS}
    for k in range(cap):
        due = start + offset + k * period
        if due >= stop_at or time.perf_counter() >= stop_at:
            break
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)  # open-loop pacing; a sender that falls behind sends at once
        t0 = time.perf_counter()
        try:
            resp = client.post("/api/v1/executions", json=body)
        except httpx.HTTPError:
            tally.errors += 1
            continue
        tally.latencies_ms.append((time.perf_counter() - t0) * 1000)
        tally.statuses[resp.status_code] = tally.statuses.get(resp.status_code, 0) + 1
    client.close()


def _queue_depth(aws_endpoint_url: str | None, aws_keys: dict[str, str] | None = None) -> Any:
    """A function returning the work queue's depth (visible + in flight), or None when SQS is not reachable.

    `aws_keys` (boto3's aws_access_key_id/aws_secret_access_key, e.g.
    `RunningCloud.boto3_kwargs()`) are the cloud's own: its local moto
    refuses requests not signed with the platform's per-start key.
    """
    if not aws_endpoint_url:
        return lambda: None
    keys = aws_keys or {}
    sqs = boto3.client(
        "sqs",
        endpoint_url=aws_endpoint_url,
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id=keys.get("aws_access_key_id") or None,  # None: boto3's usual credential chain
        aws_secret_access_key=keys.get("aws_secret_access_key") or None,
    )
    name = f"{os.environ.get('ATTUNE_STACK_NAME', 'attune')}-work"
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]

    def depth() -> dict[str, int] | None:
        try:
            attrs = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
        except (BotoCoreError, ClientError):
            return None
        return {
            "visible": int(attrs["ApproximateNumberOfMessages"]),
            "in_flight": int(attrs["ApproximateNumberOfMessagesNotVisible"]),
        }

    return depth


def _sample(api: Api, depth: Any, t0: float, samples: list[dict[str, Any]], stop: threading.Event) -> None:
    sampler = Api(api.url, api.token)  # a connection of its own, so sampling never waits behind a sender
    next_at = time.perf_counter()
    while not stop.is_set():
        samples.append(
            {
                "t_s": round(time.perf_counter() - t0, 2),
                "non_final": sampler.non_final(),
                "finished": sampler.finished(),
                "queue": depth(),
            }
        )
        next_at += 1.0
        stop.wait(max(0.0, next_at - time.perf_counter()))
    sampler.http.close()


def _slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def _throughput(
    api: Api, aws_endpoint_url: str | None, *, seconds: float, rate: float, threads: int, drain_s: float,
    aws_keys: dict[str, str] | None = None,
) -> dict[str, Any]:
    depth = _queue_depth(aws_endpoint_url, aws_keys)
    baseline = api.finished()
    samples: list[dict[str, Any]] = []
    stop = threading.Event()
    t0 = time.perf_counter()
    sampler = threading.Thread(target=_sample, args=(api, depth, t0, samples, stop), daemon=True)
    sampler.start()
    tallies = [Sender() for _ in range(threads)]
    period = threads / rate
    cap = int(seconds * rate / threads) + 1
    start, stop_at = t0 + 0.2, t0 + 0.2 + seconds
    senders = [
        threading.Thread(
            target=_send,
            args=(api, tallies[i]),
            kwargs={"start": start, "stop_at": stop_at, "period": period, "offset": i * period / threads, "cap": cap},
        )
        for i in range(threads)
    ]
    for t in senders:
        t.start()
    for t in senders:
        t.join(timeout=max(0.0, stop_at + 60 - time.perf_counter()))  # a request in flight at stop_at may take 30 s
    sent_for = time.perf_counter() - start
    window_end = api.finished() - baseline
    accepted = sum(t.statuses.get(201, 0) for t in tallies)
    drained = True
    try:
        _wait(lambda: api.finished() - baseline >= accepted, "the backlog to drain", drain_s)
    except RuntimeError:
        drained = False
    drain_s_used = time.perf_counter() - start - sent_for
    stop.set()
    sampler.join(timeout=10)
    total_done = api.finished() - baseline

    in_window = [s for s in samples if s["t_s"] <= sent_for + 0.2]
    non_final = [(float(s["t_s"]), float(s["non_final"])) for s in in_window]
    queue = [s["queue"] for s in in_window if s["queue"] is not None]
    latencies = [x for t in tallies for x in t.latencies_ms]
    end_backlog = int(non_final[-1][1]) if non_final else 0
    return {
        "window_s": round(sent_for, 2),
        "target_rate_per_s": rate,
        "client_threads": threads,
        "sent": sum(sum(t.statuses.values()) for t in tallies) + sum(t.errors for t in tallies),
        "accepted_201": accepted,
        "statuses": {str(k): v for k, v in sum((Counter(t.statuses) for t in tallies), Counter()).items()},
        "transport_errors": sum(t.errors for t in tallies),
        "submitted_per_s": round(accepted / sent_for, 1),
        "post_executions": _summary(latencies) if latencies else None,
        "completed_in_window": window_end,
        "achieved_exec_per_s": round(window_end / sent_for, 1),
        "drained": drained,
        "drain_s": round(drain_s_used, 2),
        "completed_total": total_done,
        "overall_exec_per_s": round(total_done / (sent_for + drain_s_used), 1),
        "backlog": {
            "non_final_at_end_of_window": end_backlog,
            "non_final_max": max((int(y) for _, y in non_final), default=0),
            "non_final_growth_per_s": round(_slope(non_final), 1),
            "queue_visible_max": max((q["visible"] for q in queue), default=None),
            "queue_in_flight_max": max((q["in_flight"] for q in queue), default=None),
            "built": end_backlog > rate,
        },
        "samples": samples,
    }


def run(
    url: str,
    aws_endpoint_url: str | None = None,
    *,
    events: int = 200,
    event_rate: float = 5.0,
    seconds: float = 60.0,
    rate: float | None = None,
    threads: int = 4,
    drain_s: float = 180.0,
    aws_keys: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Measure the pipeline's stage latencies and sustained throughput; returns the JSON-able result.

    The offered rate is ATTUNE_BENCH_RATE (default 250/s, our target), so the sustainable rate can be
    found by running it again lower.
    """
    rate = rate if rate is not None else float(os.environ.get("ATTUNE_BENCH_RATE", "250"))
    api = Api.register(url)
    latency = _latency(api, events, event_rate, drain_s)
    throughput = _throughput(api, aws_endpoint_url, seconds=seconds, rate=rate, threads=threads, drain_s=drain_s,
                             aws_keys=aws_keys)
    met = {
        "seed_webhook_to_event_p95_ms": latency["webhook_to_event"]["p95_ms"] < TARGETS["seed_webhook_to_event_p95_ms"],
        "seed_trigger_to_execution_p95_ms": latency["webhook_to_started"]["p95_ms"]
        < TARGETS["seed_trigger_to_execution_p95_ms"],
        "seed_exec_per_s": throughput["achieved_exec_per_s"] >= TARGETS["seed_exec_per_s"],
        "ours_webhook_to_succeeded_p95_ms": latency["webhook_to_succeeded"]["p95_ms"]
        < TARGETS["ours_webhook_to_succeeded_p95_ms"],
        "ours_exec_per_s": throughput["achieved_exec_per_s"] >= TARGETS["ours_exec_per_s"],
    }
    return {
        "benchmark": "pipeline",
        "action": {"ref": api.action, "script": PACK_FILES["actions/ok.sh"]},
        "targets": TARGETS,
        "met": met,
        "results": {"latency": latency, "throughput": throughput},
        "notes": (
            "trigger→execution is webhook send → execution.started (the action's process exists); "
            "server timestamps are PostgreSQL's clock at millisecond precision, the send time is the client's "
            "clock on the same machine; exec/s counts executions finished during the sending window"
        ),
    }

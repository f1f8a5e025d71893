"""The sensor function's work: a schedule fired (`tick`) or a delayed poll arrived (`poll_once`).

One invocation polls one sensor, so a sensor that hangs, raises or times
out costs only its own invocation: it is recorded on its row (`last_error`,
`last_poll_status`, `failures`) and polled again next time, and no other
sensor waits for it. A poll takes the sensor's lease first (one poll at a
time per sensor, whatever the schedule's overlap), runs outside any
transaction, and is recorded with its events in one transaction: the new
state, the counters and every payload as an event through `emit_event`, or
the error and the old state kept. The events are published after commit.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalicelib.aws import queues, schedules
from chalicelib.config import sensor_settings, worker_settings
from chalicelib.core.errors import AttuneError
from chalicelib.db import sensors as db
from chalicelib.db.pool import system_tx
from chalicelib.models.sensors import SensorPoll, SensorTick
from chalicelib.pipeline.events import emit_event
from chalicelib.pipeline.outbox import Pending, publish
from chalicelib.sensors import registry, remote
from chalicelib.sensors.runner import GRACE_S, PollJob, PollResult, allowed_dirs, run_poll
from chalicelib.sensors.timing import delay_s, polls_in_window, spreads
from chalicelib.worker import deps
from chalicelib.worker.packcache import PackCache

log = logging.getLogger(__name__)

QUEUE = "sensor-polls"
# A schedule whose sensor is gone this long after the schedule was made is an orphan (see registry).
ORPHAN_AFTER_S = 120.0
LEASE_SLACK_S = 30.0  # beyond timeout + grace: fetching the pack, building its virtualenv, recording
NOW_WITHIN_S = 1  # a spread poll due this soon is polled in this invocation

_lock = threading.Lock()
_packs: PackCache | None = None


def utcnow() -> datetime:
    """The sensor function's clock."""
    return datetime.now(UTC)


def pack_cache() -> PackCache:
    """This process's unpacked pack versions (shared by every sensor it polls)."""
    global _packs
    with _lock:
        if _packs is None:
            _packs = PackCache(worker_settings().pack_cache_dir)
        return _packs


def reset_pack_cache() -> None:
    """Forget this process's unpacked packs (tests that switch databases, whose storage keys repeat)."""
    global _packs
    with _lock:
        found, _packs = _packs, None
    if found is not None:
        found.clear()


@dataclass(frozen=True)
class TickReport:
    """What one schedule invocation did (returned by the Lambda, logged, asserted by tests)."""

    sensor_id: int
    outcome: str  # polled | busy | disabled | pending | orphan_deleted | spread
    polled: PollResult | None = None
    sent: int = 0

    def summary(self) -> dict[str, Any]:
        """The report without the poll's payloads and state (they may be large)."""
        polled = self.polled
        return {"sensor_id": self.sensor_id, "outcome": self.outcome, "sent": self.sent,
                "status": polled.status if polled else None, "error": polled.error if polled else None,
                "events": len(polled.payloads) if polled else 0}


def tick(msg: SensorTick, now: datetime | None = None) -> TickReport:
    """A sensor's schedule fired: poll it (or, on AWS below a minute, spread this minute's polls)."""
    now = now or utcnow()
    with system_tx() as cur:
        row = db.load_for_tick(cur, msg.tenant_id, msg.sensor_id)
    if row is None:
        if (now - msg.created).total_seconds() < ORPHAN_AFTER_S:
            return TickReport(msg.sensor_id, "pending")  # its registration may not have committed yet
        schedules.delete(registry.schedule_name(msg.sensor_id))
        log.info("sensor %d is gone: its schedule was deleted", msg.sensor_id)
        return TickReport(msg.sensor_id, "orphan_deleted")
    if not (row["enabled"] and row["trigger_enabled"]):
        # A fire the scheduler had under way as the sensor was disabled. The schedule is left as
        # the PATCH put it: re-putting it from here could race a re-enable and disable it for good.
        return TickReport(msg.sensor_id, "disabled")
    interval = int(row["poll_interval"])
    if not spreads(interval, second_rates=registry.second_rates()):
        polled = poll_once(msg.tenant_id, msg.sensor_id)
        return TickReport(msg.sensor_id, "polled" if polled else "busy", polled)
    dues = polls_in_window(row["created"], interval, msg.scheduled_time or now)
    now_due = [d for d in dues if delay_s(d, now) <= NOW_WITHIN_S][:1]
    later = [d for d in dues if d not in now_due]
    sent = _send_polls(msg, later, now)
    polled = poll_once(msg.tenant_id, msg.sensor_id) if now_due else None
    return TickReport(msg.sensor_id, "spread", polled, sent)


def _send_polls(msg: SensorTick, dues: list[datetime], now: datetime) -> int:
    """The minute's other polls as delayed messages; a lost one is a poll skipped, never a poll twice."""
    if not dues:
        return 0
    items: list[tuple[str, dict[str, Any], int]] = []
    for n, due in enumerate(dues):
        body = SensorPoll(tenant_id=msg.tenant_id, sensor_id=msg.sensor_id, due_at=due).model_dump(mode="json")
        items.append((str(n), body, delay_s(due, now)))
    try:
        return len(queues.send_batch(QUEUE, items))
    except AttuneError as exc:
        log.warning("sensor %d: could not send this minute's polls (%s)", msg.sensor_id, exc)
        return 0


def poll_message(msg: SensorPoll) -> PollResult | None:
    """A delayed poll arrived (AWS, sub-minute): poll, unless the sensor is busy or gone."""
    return poll_once(msg.tenant_id, msg.sensor_id)


def _job(lease: dict[str, Any], pack_dir: Path, timeout_s: float, python: str | None) -> PollJob:
    watch = allowed_dirs(str(lease["tenant_name"]), sensor_settings().watch_dirs)
    return PollJob(
        sensor_id=int(lease["id"]), pack_dir=pack_dir, path=str(lease["entry_point"]),
        class_name=str(lease["class_name"]), state=lease["state"], parameters=dict(lease["parameters"] or {}),
        timeout_s=timeout_s, python=python, watch_dirs=watch,
    )


def _run(lease: dict[str, Any], timeout_s: float) -> PollResult:
    """Fetch the pack (and its virtualenv) and poll; the platform's own failures are the poll's error too.

    With a runner function configured (on AWS) the poll runs there instead
    of in a local sandbox (`chalicelib.sensors.remote`): this function holds
    the database and the queues, and Lambda cannot confine tenant code.
    """
    key = str(lease["storage_key"])
    runner_function = worker_settings().action_runner_function
    try:
        pack_dir = pack_cache().get(key)
        if runner_function:
            return remote.poll_remotely(runner_function, _remote_poll(lease, timeout_s), pack_key=key,
                                        pack_dir=pack_dir)
        env = deps.python_env(pack_dir, deps_owner(key))
    except deps.DependencyError as exc:
        return PollResult("failed", error=f"pack dependencies: {exc.message}")
    except AttuneError as exc:
        return PollResult("failed", error=f"the pack could not be fetched: {exc.message}")
    python = str(env / "bin" / "python") if env is not None else None
    try:
        return run_poll(_job(lease, pack_dir, timeout_s, python))
    except OSError as exc:  # no work dir, no pipe: the host's trouble, recorded like the sensor's own
        return PollResult("failed", error=f"the poll could not start: {exc}")


def _remote_poll(lease: dict[str, Any], timeout_s: float) -> remote.RemotePoll:
    return remote.RemotePoll(
        sensor_id=int(lease["id"]), entry_point=str(lease["entry_point"]), class_name=str(lease["class_name"]),
        state=lease["state"], parameters=dict(lease["parameters"] or {}), timeout_s=timeout_s,
    )


def deps_owner(storage_key: str) -> str:
    """Whose dependency cache a pack version uses (the worker's rule: `<tenant>/<pack ref>`)."""
    parts = storage_key.split("/")
    return f"{parts[1]}/{parts[3]}" if len(parts) > 3 and parts[0] == "tenants" else "unknown"


def poll_once(tenant_id: int, sensor_id: int) -> PollResult | None:
    """Take the lease, poll, record; None when there was nothing to do (disabled, gone, or a poll runs)."""
    timeout_s = sensor_settings().timeout_s
    with system_tx() as cur:
        lease = db.claim(cur, tenant_id, sensor_id, default_timeout_s=timeout_s, slack_s=GRACE_S + LEASE_SLACK_S)
    if lease is None:
        return None
    polled_at = utcnow()
    result = _run(lease, float(lease["timeout"] or timeout_s))
    messages: list[Pending] = []
    with system_tx() as cur:
        if result.status == "succeeded":
            if db.record_success(cur, lease, state=result.state, polled_at=polled_at, emitted=len(result.payloads)):
                for payload in result.payloads:
                    emitted = emit_event(cur, tenant_id=tenant_id, trigger_id=int(lease["trigger_id"]),
                                         payload=payload)
                    messages.append(emitted.message)
            else:
                log.warning("sensor %d: the poll's lease ran out before it finished; its result is dropped", sensor_id)
        else:
            db.record_failure(cur, lease, status=result.status, error=result.error or result.status,
                              polled_at=polled_at)
            log.warning("sensor %s poll %s: %s", lease["ref"], result.status, (result.error or "").splitlines()[0])
    publish(messages)
    return result

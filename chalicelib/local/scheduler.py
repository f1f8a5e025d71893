"""Fires EventBridge Scheduler schedules, which neither moto nor LocalStack ever does.

It reads the schedules through the Scheduler API (so whatever created them -
the provisioner, the timers code - needs no local special case), re-reads
them every few seconds (a schedule created, updated, disabled or deleted later
is noticed), and invokes each ENABLED schedule's target when an occurrence is
due: an SQS queue gets the target Input as a message, a Lambda function is
called through the local handler the template maps its name to, a state
machine gets an execution. Each schedule keeps a watermark (the last
occurrence fired), persisted when a state file is given, so an occurrence
fires once even across a restart of the scheduler role.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from chalice.local import LambdaContext

from chalicelib.aws.clients import client
from chalicelib.config import settings
from chalicelib.core.errors import AttuneError
from chalicelib.local import schedule_expressions as se
from chalicelib.local.provision import lambda_handlers, load_template
from chalicelib.local.sqs_poller import Handler, resolve_handler

log = logging.getLogger(__name__)

_EPSILON = timedelta(milliseconds=1)
DEFAULT_MAX_EVENT_AGE = 86400
_SECOND_RATE = re.compile(r"^rate\((\d+)\s+(second|seconds)\)$")
# Lambda runs invocations side by side; so do we, so a slow sensor poll never delays another target.
LAMBDA_WORKERS = 16


def parse_expression(expression: str) -> se.Expression:
    """A ScheduleExpression as EventBridge Scheduler reads it, plus the local-only `rate(N seconds)`.

    Scheduler's shortest rate is a minute, so on AWS a sensor polling faster
    runs on `rate(1 minute)` and spreads its polls (chalicelib/sensors/timing.py);
    this scheduler fires sub-minute rates itself, so locally a sensor's
    schedule fires each of its polls.
    """
    found = _SECOND_RATE.match(expression.strip())
    if found is None:
        return se.parse(expression)
    value = int(found.group(1))
    if value < 1:
        raise se.InvalidExpression("rate value must be positive")
    if (value == 1) != (found.group(2) == "second"):
        raise se.InvalidExpression(f"use the {'singular' if value == 1 else 'plural'} unit in {expression!r}")
    return se.Rate(seconds=value)


def utcnow() -> datetime:
    """The scheduler's default clock (tests pass their own)."""
    return datetime.now(UTC)


@dataclass
class Tracked:
    """One schedule as last read, with the watermark of what was fired."""

    arn: str
    name: str
    group: str
    modified: Any
    detail: dict[str, Any]
    expression: se.Expression
    window: se.Window
    watermark: datetime
    fired_version: str | None = None

    @property
    def enabled(self) -> bool:
        """DISABLED schedules are tracked (to notice re-enabling) but never fire."""
        return bool(self.detail.get("State", "ENABLED") == "ENABLED")

    @property
    def version(self) -> str:
        """Identifies the schedule's current definition; a one-time fire is per version."""
        return str(self.modified)


@dataclass(frozen=True)
class Fire:
    """A record of one invocation, returned to callers and tests."""

    schedule_arn: str
    scheduled: datetime
    target_arn: str


def render_input(text: str | None, schedule_arn: str, scheduled: datetime) -> str:
    """The target Input with Scheduler's context attributes filled in."""
    if not text:
        return "{}"
    for key, value in (
        ("<aws.scheduler.schedule-arn>", schedule_arn),
        ("<aws.scheduler.scheduled-time>", se.format_time(scheduled)),
        ("<aws.scheduler.execution-id>", str(uuid.uuid4())),
        ("<aws.scheduler.attempt-number>", "1"),
    ):
        text = text.replace(key, value)
    return text


def _as_utc(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)  # type: ignore[no-any-return]


class Scheduler:
    """Polls the Scheduler API and invokes due targets; `run` is the scheduler role's main.

    `group_prefix` limits it to schedule groups whose names start with it
    (None: every group, right for an emulator that holds only this stack).
    """

    def __init__(
        self,
        lambda_handlers: Mapping[str, str | Handler],
        *,
        refresh_seconds: float = 2.0,
        tick_seconds: float = 0.25,
        state_path: Path | None = None,
        clock: Callable[[], datetime] = utcnow,
        lambda_workers: int = LAMBDA_WORKERS,
        group_prefix: str | None = None,
    ) -> None:
        self._lambdas = dict(lambda_handlers)
        self._group_prefix = group_prefix
        self._refresh_seconds = refresh_seconds
        self._tick = tick_seconds
        self._state_path = state_path
        self._clock = clock
        self._executor = ThreadPoolExecutor(lambda_workers, thread_name_prefix="scheduler-lambda")
        self._tracked: dict[str, Tracked] = {}
        self._invalid: set[tuple[str, str]] = set()
        self._unresolvable: set[str] = set()
        self._last_refresh: datetime | None = None
        self._state: dict[str, dict[str, Any]] = self._load_state()

    # ---------------------------------------------------------------- state --
    def _load_state(self) -> dict[str, dict[str, Any]]:
        if self._state_path is None or not self._state_path.exists():
            return {}
        try:
            data = json.loads(self._state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable scheduler state %s: %s", self._state_path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def _save_state(self) -> None:
        if self._state_path is None:
            return
        self._state = {
            arn: {"watermark": t.watermark.isoformat(), "fired_version": t.fired_version}
            for arn, t in self._tracked.items()
        }
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._state), encoding="utf-8")
        os.replace(tmp, self._state_path)

    # -------------------------------------------------------------- reading --
    def schedules(self) -> dict[str, Tracked]:
        """What the scheduler currently knows, by schedule ARN."""
        return dict(self._tracked)

    def refresh(self) -> None:
        """Re-read the schedule list; fetch the full definition of new or changed ones."""
        scheduler = client("scheduler")
        seen: set[str] = set()
        for page in scheduler.get_paginator("list_schedules").paginate():
            for summary in page.get("Schedules", []):
                group = summary.get("GroupName", "default")
                if self._group_prefix is not None and not group.startswith(self._group_prefix):
                    continue
                arn = summary["Arn"]
                seen.add(arn)
                known = self._tracked.get(arn)
                if known is not None and known.modified == summary.get("LastModificationDate"):
                    continue
                try:
                    detail = scheduler.get_schedule(Name=summary["Name"], GroupName=group)
                except ClientError as exc:
                    log.warning("could not read schedule %s: %s", arn, exc)
                    continue
                tracked = self._track(detail, known)
                if tracked is not None:
                    self._tracked[arn] = tracked
        for gone in set(self._tracked) - seen:
            del self._tracked[gone]
        self._last_refresh = self._clock()

    def _track(self, detail: Mapping[str, Any], known: Tracked | None) -> Tracked | None:
        arn = str(detail["Arn"])
        modified = detail.get("LastModificationDate")
        try:
            expression = parse_expression(str(detail["ScheduleExpression"]))
            tz = se.zone(detail.get("ScheduleExpressionTimezone"))
        except se.InvalidExpression as exc:
            if (arn, str(modified)) not in self._invalid:
                self._invalid.add((arn, str(modified)))
                log.error("schedule %s is never fired: %s", arn, exc)
            return None
        created = _as_utc(detail.get("CreationDate")) or self._clock()
        start = _as_utc(detail.get("StartDate"))
        window = se.Window(anchor=start or created, start=start,
                           end=_as_utc(detail.get("EndDate")), tz=tz)
        initial = window.anchor - _EPSILON
        saved = self._state.get(arn, {})
        watermark = max(initial, known.watermark if known else
                        _as_utc(saved.get("watermark")) or initial)
        fired = known.fired_version if known else saved.get("fired_version")
        return Tracked(arn=arn, name=str(detail["Name"]), group=str(detail.get("GroupName", "default")),
                       modified=modified, detail=dict(detail), expression=expression,
                       window=window, watermark=watermark, fired_version=fired)

    # --------------------------------------------------------------- firing --
    def fire_due(self, now: datetime | None = None) -> list[Fire]:
        """Invoke every enabled schedule whose latest occurrence in (watermark, now] is new."""
        now = now or self._clock()
        fired: list[Fire] = []
        for tracked in list(self._tracked.values()):
            if not tracked.enabled:
                tracked.watermark = max(tracked.watermark, now)
                continue
            if isinstance(tracked.expression, se.At) and tracked.fired_version == tracked.version:
                continue
            due = se.latest_due(tracked.expression, tracked.window, tracked.watermark, now)
            if due is None:
                continue
            tracked.watermark = due
            tracked.fired_version = tracked.version
            max_age = tracked.detail.get("Target", {}).get("RetryPolicy", {}).get(
                "MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE)
            if (now - due).total_seconds() > max_age:
                log.warning("schedule %s: occurrence %s is older than %ss; dropped",
                            tracked.arn, se.format_time(due), max_age)
                continue
            fired.append(self._invoke(tracked, due))
        if fired:
            self._save_state()
        return fired

    def _invoke(self, tracked: Tracked, scheduled: datetime) -> Fire:
        target = tracked.detail.get("Target", {})
        arn = str(target.get("Arn", ""))
        payload = render_input(target.get("Input"), tracked.arn, scheduled)
        service = arn.split(":")[2] if arn.count(":") >= 5 else ""
        log.info("schedule %s fires (%s) -> %s", tracked.name, se.format_time(scheduled), arn)
        try:
            if service == "sqs":
                self._send_to_queue(arn, payload, target)
            elif service == "lambda":
                self._call_function(arn, payload)
            elif service == "states":
                client("stepfunctions").start_execution(
                    stateMachineArn=arn, input=payload,
                    name=f"{tracked.name[:40]}-{uuid.uuid4().hex}")
            else:
                log.error("schedule %s: target %s is not supported locally", tracked.arn, arn)
        except (BotoCoreError, ClientError) as exc:
            log.error("schedule %s: invoking %s failed: %s", tracked.arn, arn, exc)
        if isinstance(tracked.expression, se.At) and tracked.detail.get("ActionAfterCompletion") == "DELETE":
            self._delete(tracked)
        return Fire(schedule_arn=tracked.arn, scheduled=scheduled, target_arn=arn)

    def _send_to_queue(self, arn: str, payload: str, target: Mapping[str, Any]) -> None:
        sqs = client("sqs")
        account, name = arn.split(":")[4], arn.split(":")[5]
        url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        extra: dict[str, Any] = {}
        group = target.get("SqsParameters", {}).get("MessageGroupId")
        if group:
            extra = {"MessageGroupId": group, "MessageDeduplicationId": uuid.uuid4().hex}
        sqs.send_message(QueueUrl=url, MessageBody=payload, **extra)

    def _call_function(self, arn: str, payload: str) -> None:
        name = arn.split(":")[6]
        handler = self._lambdas.get(name)
        if handler is None:
            log.error("no local handler for function %s (is it in infra/template.yaml?)", name)
            return
        if isinstance(handler, str):
            try:
                handler = resolve_handler(handler)
            except (ImportError, AttributeError, TypeError) as exc:
                if name not in self._unresolvable:
                    self._unresolvable.add(name)
                    log.error("function %s: cannot load %s: %s", name, handler, exc)
                return
            self._lambdas[name] = handler
        try:
            event: Any = json.loads(payload)
        except ValueError:
            event = payload
        self._executor.submit(self._run_function, name, handler, event)

    @staticmethod
    def _run_function(name: str, handler: Handler, event: Any) -> None:
        context = LambdaContext(function_name=name, memory_size=512, max_runtime_ms=900_000)
        try:
            handler(event, context)
        except Exception:  # an async invocation's error is logged, as Lambda would
            log.exception("function %s failed", name)

    def _delete(self, tracked: Tracked) -> None:
        try:
            client("scheduler").delete_schedule(Name=tracked.name, GroupName=tracked.group)
        except ClientError as exc:
            log.warning("could not delete completed schedule %s: %s", tracked.arn, exc)

    # ------------------------------------------------------------------ loop --
    def run(self, stop: threading.Event, ready: threading.Event | None = None) -> None:
        """Tick until `stop` is set, then wait for in-flight function calls."""
        first = True
        try:
            while not stop.is_set():
                now = self._clock()
                try:
                    if first or self._last_refresh is None or (
                        now - self._last_refresh).total_seconds() >= self._refresh_seconds:
                        self.refresh()
                    self.fire_due(now)
                except (BotoCoreError, ClientError) as exc:
                    log.warning("scheduler API unavailable: %s", exc)
                    stop.wait(1.0)
                if first and ready is not None and self._last_refresh is not None:
                    ready.set()
                    first = False
                stop.wait(self._tick)
        finally:
            self._executor.shutdown(wait=True)


def serve(stop: threading.Event, ready: threading.Event) -> None:
    """The `scheduler` role's main: fire the stack's schedules with the template's handlers."""
    run_dir = Path(settings().data_dir) / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    _restore_sensor_schedules()
    scheduler = Scheduler(lambda_handlers(load_template()),
                          state_path=run_dir / "scheduler-state.json")
    scheduler.run(stop, ready)


def _restore_sensor_schedules() -> None:
    """Sensors' schedules are made at run time, and moto forgets them when it restarts: make them again."""
    from chalicelib.sensors.registry import restore_schedules  # the database, only for this role

    try:
        made = restore_schedules()
    except AttuneError as exc:
        log.warning("could not restore sensor schedules (%s); sensors registered before a restart may not poll", exc)
        return
    if made:
        log.info("restored %d sensor schedule(s) the emulator had lost", made)

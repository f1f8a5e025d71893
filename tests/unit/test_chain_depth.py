"""Chains and sensor timing, pure: depth limits, trace filters, the helper's targets, schedules and spreads."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.core.errors import BadRequest
from chalicelib.local import schedule_expressions as se
from chalicelib.local.scheduler import parse_expression
from chalicelib.pipeline.events import Suppressed, answer, next_link, suppression, trace_filter
from chalicelib.runners.base import Outcome
from chalicelib.runners.output import OutputBuffer
from chalicelib.sensors.runner import MAX_PAYLOADS, interpret
from chalicelib.sensors.timing import delay_s, polls_in_window, schedule_expression, spreads

T0 = datetime(2026, 1, 27, 10, 30, tzinfo=UTC)


# -- chains ------------------------------------------------------------------------------------------
def test_an_executions_event_goes_one_level_deeper_on_the_same_trace() -> None:
    link = next_link(execution_id=7, trace="abc", execution_depth=0)
    assert (link.trace, link.depth, link.execution_id) == ("abc", 1, 7)
    assert next_link(8, "abc", link.depth).depth == 2


def test_the_depth_limit_allows_up_to_it_and_suppresses_past_it() -> None:
    # GIVEN the default limit of 10: depths 1..10 are evaluated, 11 is not
    assert all(suppression(depth, 10) is None for depth in range(11))
    reason = suppression(11, 10)
    assert reason is not None and "11" in reason and "ATTUNE_MAX_CHAIN_DEPTH" in reason and "loop" in reason
    # AND a limit of 0 allows no chained event at all (a webhook's own event has depth 0)
    assert suppression(0, 0) is None and suppression(1, 0) is not None


def test_a_self_loop_stops_after_the_limit() -> None:
    # GIVEN A's action firing A's own webhook: each turn is one execution deeper
    limit, depth, runs = 10, 0, 1  # the first run came from an outside webhook call (depth 0)
    while True:
        link = next_link(runs, "t", depth)
        if suppression(link.depth, limit) is not None:
            break
        depth, runs = link.depth, runs + 1
    # THEN it ran limit + 1 times and then stopped, whatever happens next
    assert runs == limit + 1 and depth == limit


def test_the_emit_answer_says_status_chain_and_reason() -> None:
    event = {"id": 5, "status": "suppressed", "trace": "t", "depth": 11}
    assert answer(Suppressed(event, "too deep")) == {"event_id": 5, "status": "suppressed", "trace": "t",
                                                     "depth": 11, "reason": "too deep"}


def test_trace_filters_are_checked() -> None:
    assert trace_filter(None) is None and trace_filter("") is None
    assert trace_filter("0b5c8e7e-8f0e-4b8a-9d1c-2f7f0a6f7e11") == "0b5c8e7e-8f0e-4b8a-9d1c-2f7f0a6f7e11"
    for bad in ("'; drop table x", "a" * 65, "trace id", "é"):
        with pytest.raises(BadRequest, match="trace"):
            trace_filter(bad)


# -- attune_action.emit's targets --------------------------------------------------------------------
@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The helper with a context pipe holding an API URL, as the worker gives it."""
    import attune_action  # type: ignore[import-not-found]

    read, write = os.pipe()
    os.write(write, json.dumps({"api_url": "http://127.0.0.1:18080", "token": "t"}).encode())
    os.close(write)
    monkeypatch.setenv("ATTUNE_CONTEXT_FD", str(read))
    monkeypatch.setattr(attune_action, "_context", None)
    return attune_action


@pytest.fixture(autouse=True)
def _sdk_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.runners.sandbox import SDK_DIR

    monkeypatch.syspath_prepend(str(SDK_DIR))


def test_emit_takes_a_webhook_url_its_path_or_a_trigger_id(sdk: Any) -> None:
    assert sdk._trigger_id(12) == 12
    assert sdk._trigger_id("12") == 12
    assert sdk._trigger_id("/api/v1/webhooks/12") == 12
    assert sdk._trigger_id("http://127.0.0.1:18080/api/v1/webhooks/12") == 12


def test_emit_never_sends_the_token_to_another_host(sdk: Any) -> None:
    with pytest.raises(sdk.AttuneActionError, match="this Attune's triggers only"):
        sdk._trigger_id("https://evil.example/api/v1/webhooks/12")
    for bad in (True, 0, -1, "/api/v1/rules/3", "webhook", None):
        with pytest.raises(sdk.AttuneActionError):
            sdk._trigger_id(bad)


# -- sensor schedules ------------------------------------------------------------------------------------
def test_local_schedules_fire_each_poll_aws_ones_spread_sub_minute_polls() -> None:
    assert schedule_expression(5, second_rates=True) == "rate(5 seconds)"
    assert schedule_expression(1, second_rates=True) == "rate(1 second)"
    assert schedule_expression(5, second_rates=False) == "rate(1 minute)"
    assert schedule_expression(60, second_rates=False) == "rate(1 minute)"
    assert schedule_expression(300, second_rates=False) == "rate(5 minutes)"
    assert schedule_expression(90, second_rates=False) == "rate(1 minute)"
    assert not spreads(5, second_rates=True) and not spreads(120, second_rates=False)
    assert spreads(5, second_rates=False) and spreads(90, second_rates=False)


def test_the_local_scheduler_reads_second_rates_and_aws_expressions() -> None:
    assert parse_expression("rate(5 seconds)") == se.Rate(seconds=5)
    assert parse_expression("rate(1 second)") == se.Rate(seconds=1)
    assert parse_expression("rate(2 minutes)") == se.Rate(seconds=120)
    for bad in ("rate(0 seconds)", "rate(1 seconds)", "rate(5 second)"):
        with pytest.raises(se.InvalidExpression):
            parse_expression(bad)


def test_a_minute_holds_every_poll_due_in_it_on_the_sensors_own_grid() -> None:
    # GIVEN a 20 s sensor created at T0 + 7 s, and the minute invocation at T0 + 60 s
    anchor = T0 + timedelta(seconds=7)
    dues = polls_in_window(anchor, 20, T0 + timedelta(seconds=60))
    # THEN its polls at +67, +87 and +107 s
    assert [int((d - T0).total_seconds()) for d in dues] == [67, 87, 107]
    # AND a 90 s sensor polls in some minutes and not others, never twice
    assert [len(polls_in_window(T0, 90, T0 + timedelta(minutes=m))) for m in range(4)] == [1, 1, 0, 1]
    # AND a minute before the sensor existed holds nothing before it
    assert polls_in_window(anchor, 20, T0) == [anchor, anchor + timedelta(seconds=20), anchor + timedelta(seconds=40)]
    assert delay_s(T0 + timedelta(seconds=40.4), T0) == 40 and delay_s(T0 - timedelta(seconds=3), T0) == 0


# -- a poll's result -----------------------------------------------------------------------------------
def _outcome(channel: bytes = b"", stderr: bytes = b"", exit_code: int = 0, **flags: Any) -> Outcome:
    out = Outcome(exit_code, OutputBuffer(1 << 20), OutputBuffer(1 << 20), OutputBuffer(1 << 20), **flags)
    assert out.channel is not None
    out.channel.feed(channel)
    out.stderr.feed(stderr)
    return out


def test_a_polls_answer_becomes_payloads_and_state() -> None:
    done = interpret(_outcome(b'{"payloads": [{"a": 1}], "state": {"n": 1}}'), 5)
    assert (done.status, done.payloads, done.state, done.error) == ("succeeded", [{"a": 1}], {"n": 1}, None)


def test_a_raising_a_silent_a_timed_out_and_a_flooding_poll_fail_with_why() -> None:
    raised = interpret(_outcome(b'{"error": "ValueError: no"}', b"Traceback ...\nValueError: no", 1), 5)
    assert raised.status == "failed" and raised.error is not None
    assert raised.error.startswith("ValueError: no") and "Traceback" in raised.error
    silent = interpret(_outcome(b"", b"Killed", -9), 5)
    assert silent.status == "failed" and "without an answer" in (silent.error or "")
    slow = interpret(_outcome(timed_out=True), 5)
    assert slow.status == "timed_out" and "timed out after 5s" in (slow.error or "")
    many = json.dumps({"payloads": [{}] * (MAX_PAYLOADS + 1), "state": None}).encode()
    flooded = interpret(_outcome(many), 5)
    assert flooded.status == "failed" and "keep the rest in the state" in (flooded.error or "")

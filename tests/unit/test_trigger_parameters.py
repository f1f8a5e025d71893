"""Timer parameters are validated at creation: a bad timer is a 400, never a silent no-op."""

from __future__ import annotations

import pytest

from chalicelib.core.errors import ValidationFailed
from chalicelib.core.templating import check_criteria, check_tree
from chalicelib.core.timers import validate_trigger_parameters


@pytest.mark.parametrize(
    "expression", ["*/5 * * * * *", "0,3,6,12 * * * * *", "0 * * * * *", "*/15 * * * *", "0 9 * * mon-fri"]
)
def test_cron_accepts_five_and_six_fields(expression: str) -> None:
    out = validate_trigger_parameters("cron", {"expression": expression, "timezone": "Europe/Berlin"})
    assert out == {"expression": expression, "timezone": "Europe/Berlin"}


def test_cron_defaults_to_utc() -> None:
    assert validate_trigger_parameters("cron", {"expression": "* * * * *"})["timezone"] == "UTC"


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"expression": "61 * * * *"}, "invalid cron"),
        ({"expression": "* * *"}, "5 fields"),
        ({"expression": "not a cron"}, "fields"),
        ({"expression": "* * * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({}, "expression"),
        ({"expression": "* * * * *", "extra": 1}, "unknown"),
    ],
)
def test_bad_cron_is_refused(params: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationFailed, match=needle):
        validate_trigger_parameters("cron", params)


@pytest.mark.parametrize("seconds", [-1, 0, 1.5, "5", True, None])
def test_bad_interval_is_refused(seconds: object) -> None:
    with pytest.raises(ValidationFailed, match="seconds"):
        validate_trigger_parameters("interval", {"seconds": seconds})


def test_interval_accepts_whole_seconds() -> None:
    assert validate_trigger_parameters("interval", {"seconds": 5}) == {"seconds": 5}


def test_date_needs_an_offset() -> None:
    with pytest.raises(ValidationFailed, match="offset"):
        validate_trigger_parameters("date", {"at": "2026-01-27T10:30:00"})
    with pytest.raises(ValidationFailed, match="ISO-8601"):
        validate_trigger_parameters("date", {"at": "next tuesday"})
    out = validate_trigger_parameters("date", {"at": "2026-01-27T10:30:00Z"})
    assert out == {"at": "2026-01-27T10:30:00+00:00"}


def test_webhook_parameters_are_free_form() -> None:
    assert validate_trigger_parameters("webhook", {"anything": [1, 2]}) == {"anything": [1, 2]}


def test_criteria_syntax_is_checked_in_both_forms() -> None:
    check_criteria("{{ trigger.data.level == 'info' }}")
    check_criteria("trigger.data.count > 100")
    with pytest.raises(ValidationFailed, match="criteria"):
        check_criteria("{{ trigger.data.level == }}")
    with pytest.raises(ValidationFailed, match="criteria"):
        check_criteria("trigger.data.level ==")


def test_parameter_templates_are_checked_with_their_path() -> None:
    check_tree({"a": "{{ trigger.data.x }}", "b": [1, "plain"]}, "parameters")
    with pytest.raises(ValidationFailed, match=r"parameters\.b\[1\]"):
        check_tree({"b": [1, "{{ oops( }}"]}, "parameters")

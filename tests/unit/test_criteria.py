"""Criteria evaluation and parameter rendering (T2.5, T2.4): types kept, sandbox enforced."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.core.criteria import TemplateFailure, matches, render

CTX: dict[str, Any] = {
    "trigger": {"data": {"status": "critical", "count": 150, "env": "prod", "user": {"email": "a@b.c"}}},
    "datastore": {"threshold": 100},
    "event": {"id": 7},
    "rule": {"ref": "r1"},
}


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("{{ trigger.data.status == 'critical' }}", True),
        ('{{ trigger.data.status == "info" }}', False),
        ("{{ trigger.data.count > 100 }}", True),
        ("{{ trigger.data.env in ['prod', 'staging'] }}", True),
        ("{{ trigger.data.count > datastore.threshold }}", True),
        ("trigger.data.user.email == 'a@b.c'", True),
        ("{{ trigger.data.missing == 'x' }}", False),
        ("{{ trigger.data.missing }}", False),
        ("{% if trigger.data.count > 1 %}yes{% endif %}", True),
        ("{% if trigger.data.count > 1000 %}yes{% endif %}", False),
        (None, True),
        ("   ", True),
    ],
)
def test_criteria(criteria: str | None, expected: bool) -> None:
    assert matches(criteria, CTX) is expected


def test_single_expression_keeps_native_types() -> None:
    out = render(
        {"n": "{{ trigger.data.count }}", "s": "count={{ trigger.data.count }}", "l": ["{{ event.id }}", 3], "k": 5},
        CTX,
    )
    assert out == {"n": 150, "s": "count=150", "l": [7, 3], "k": 5}
    assert isinstance(out["n"], int)


def test_missing_values_render_as_none() -> None:
    assert render({"x": "{{ trigger.data.nope }}"}, CTX) == {"x": None}


def test_template_errors_name_where() -> None:
    with pytest.raises(TemplateFailure, match=r"parameters\.x"):
        render({"x": "{{ trigger.data.count + 'a' }}"}, CTX)
    with pytest.raises(TemplateFailure, match="criteria"):
        matches("{{ 1 / 0 }}", CTX)


def test_sandbox_blocks_escapes() -> None:
    with pytest.raises(TemplateFailure):
        matches("{{ ''.__class__.__mro__[1].__subclasses__() }}", CTX)
    with pytest.raises(TemplateFailure):
        render({"x": "{{ trigger.data.update({'status': 'x'}) }}"}, CTX)

"""Property: no input to any route answers a 500 (issue 10); every refusal is the error contract.

Hypothesis generates the request: which route and method, the path ids (any
text), the query string (known parameter names with any values, and
unknown ones), and the body (any JSON value — deep, huge, odd Unicode — or
any bytes), sent with a valid token or without. It runs in CI with a fixed
budget; a failure prints the shrunk request that broke the contract.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.api import register

QUERY_NAMES = ["limit", "offset", "status", "trigger_id", "rule_id", "event_id", "action_ref", "enabled",
               "parent_execution_id", "enforcement_id", "execution_id", "runner_type", "pack", "prefix"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=5),
    max_leaves=30,
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["ref", "key", "value", "type", "trigger_id", "action_ref", "parameters",
                                     "username", "password", "files", "criteria", "runner_type", "code"]),
                    json_values, max_size=6).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)
query_values = st.text(max_size=30) | st.integers().map(str) | st.sampled_from(["²", "①", "٣", "-0", "1e3"])


def _routes() -> list[tuple[str, str]]:
    from app import app as chalice_app

    return sorted((path, method) for path, methods in chalice_app.routes.items() for method in methods)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(
    route=st.sampled_from(_routes()),
    path_value=st.text(min_size=1, max_size=30) | st.integers(min_value=0).map(str),
    query=st.dictionaries(st.sampled_from(QUERY_NAMES) | st.text(min_size=1, max_size=10), query_values, max_size=3),
    body=bodies,
    authenticated=st.booleans(),
)
def test_no_input_to_any_route_answers_a_500(
    api: Any, *, route: tuple[str, str], path_value: str, query: dict[str, str], body: bytes, authenticated: bool
) -> None:
    path, method = route
    user = getattr(api, "_fuzz_user", None)
    if user is None:
        user = register(api, "fuzzer")
        api._fuzz_user = user
    target = re.sub(r"{\w+}", urllib.parse.quote(path_value, safe=""), path)
    if query:
        target += "?" + urllib.parse.urlencode(query)
    headers = {"Content-Type": "application/json"}
    if authenticated:
        headers["Authorization"] = f"Bearer {user.token}"
    kwargs: dict[str, Any] = {"headers": headers}
    if method in {"POST", "PUT", "PATCH"}:
        kwargs["body"] = body
    resp = getattr(api.http, method.lower())(target, **kwargs)
    assert resp.status_code < 500, (method, target, body[:200], resp.body[:300])
    if resp.status_code >= 400:
        error = json.loads(resp.body)
        assert set(error) == {"error"} and error["error"]["code"] and error["error"]["message"], error

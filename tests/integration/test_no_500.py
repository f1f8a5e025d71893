"""Bad input never produces a 500: every route, fed junk, answers a 4xx in the error contract."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.helpers.api import register

JUNK_IDS = ["abc", "0", "-1", "99999999999999999999", "1.5", "%00", "%27%20OR%201=1", "core.%2e%2e", "a" * 300,
            "%C2%B2", "1%C2%B2", "9" * 5000]
JUNK_BODIES: list[bytes] = [
    b"{bad json",
    b"[]",
    b"null",
    b"123",
    b'"str"',
    b"{}",
    b'{"unexpected": true}',
    json.dumps({"ref": 5, "type": [], "key": {}, "value": None, "trigger_id": "x"}).encode(),
    json.dumps({"trigger_id": 2**70, "action_ref": "a.b", "seconds": 1e308}).encode(),
    json.dumps({"ref": "\u0000nul", "key": "\u0000", "username": "\u0000abc", "password": "\u0000" * 9}).encode(),
    "{\"ref\": \"\ud800\"}".encode("utf-8", "surrogatepass"),
    b"\xff\xfe\x00garbage",
]
# The bodies that answered 500 before (issue 10): what json.loads accepts and nothing after it can hold.
HOSTILE_BODIES: list[bytes] = [
    b"[" * 957 + b"]" * 957,  # Python's recursion limit
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
    b'{"username": "u", "password": "p", "n": ' + b"9" * 5000 + b"}",  # past the 4300-digit int limit
    b'{"username": "\\ud800", "password": "\\ud800x", "ref": "\\ud800", "key": "\\ud800"}',  # a lone surrogate
    b'{"key": "k", "value": NaN}',
    b'{"key": "k", "value": Infinity, "ref": -Infinity}',
    b'{"key": "k", "value": 1e400}',
]
JUNK_BODIES += HOSTILE_BODIES
JUNK_QUERIES = ["limit=abc", "offset=-5", "limit=99999999999999999999", "status=%00", "trigger_id=x", "enabled=maybe",
                "limit=%C2%B2", "offset=%C2%B9", "trigger_id=%E2%91%A0", "limit=" + "9" * 5000, "status=%ED%A0%80"]


def _paths(app: Any) -> list[tuple[str, str]]:
    return [(path, method) for path, methods in app.routes.items() for method in methods]


def _fill(path: str, value: str) -> str:
    return re.sub(r"{\w+}", value, path)


def test_no_route_answers_500_to_junk(api: Any) -> None:
    from app import app as chalice_app

    user = register(api, "fuzz")
    headers = {"Authorization": f"Bearer {user.token}", "Content-Type": "application/json"}
    seen = 0
    for path, method in _paths(chalice_app):
        call = getattr(api.http, method.lower())
        for junk_id in JUNK_IDS if "{" in path else [""]:
            target = _fill(path, junk_id)
            bodies = JUNK_BODIES if method in {"POST", "PUT", "PATCH"} else [None]
            for body in bodies:
                kwargs: dict[str, Any] = {"headers": headers}
                if body is not None:
                    kwargs["body"] = body
                resp = call(target, **kwargs)
                seen += 1
                assert resp.status_code < 500, (method, target, body, resp.body[:500])
                if resp.status_code >= 400:
                    err = json.loads(resp.body)
                    assert set(err) == {"error"} and err["error"]["message"], (method, target, err)
            if method == "GET":
                for query in JUNK_QUERIES:
                    resp = call(f"{target}?{query}", headers=headers)
                    seen += 1
                    assert resp.status_code < 500, (method, target, query, resp.body[:500])
    assert seen > 200


def test_openapi_lists_every_route(api: Any) -> None:
    from app import app as chalice_app

    resp = api.http.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    doc = json.loads(resp.body)
    assert doc["openapi"].startswith("3.")
    for path, method in _paths(chalice_app):
        assert method.lower() in doc["paths"][path], (method, path)
    register_op = doc["paths"]["/auth/register"]["post"]
    schema_name = register_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(doc["components"]["schemas"][schema_name]["required"]) == {"username", "password"}
    assert doc["paths"]["/api/v1/rules"]["post"]["security"] == [{"bearer": []}]


def test_hostile_json_is_a_400_naming_the_problem_everywhere(api: Any) -> None:
    """GIVEN each body that used to answer 500 WHEN sent to a JSON route, the public login and a real
    webhook THEN a 400 in the error contract that says what is wrong, and nothing is stored."""
    user = register(api, "hostile")
    headers = {"Authorization": f"Bearer {user.token}", "Content-Type": "application/json"}
    status, trigger = user.post("/api/v1/triggers", {"type": "webhook"})
    assert status == 201
    problems = ("nested deeper", "digits", "lone surrogate", "not valid JSON", "out of range")
    for body in HOSTILE_BODIES:
        targets = (("/api/v1/datastore", headers), ("/auth/login", {}), (f"/api/v1/webhooks/{trigger['id']}", {}))
        for path, auth in targets:
            resp = api.http.post(path, body=body, headers=auth)
            assert resp.status_code == 400, (path, body[:60], resp.body[:300])
            message = json.loads(resp.body)["error"]["message"]
            assert any(p in message for p in problems), (path, body[:60], message)
    # AND no event was stored for the refused webhook bodies, while a deep-but-sane one is accepted
    assert user.get(f"/api/v1/events?trigger_id={trigger['id']}")[1]["total"] == 0
    fine = b'{"a":' * 50 + b"1" + b"}" * 50
    assert api.http.post(f"/api/v1/webhooks/{trigger['id']}", body=fine, headers={}).status_code == 202
    assert user.get(f"/api/v1/events?trigger_id={trigger['id']}")[1]["total"] == 1

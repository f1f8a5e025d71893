"""Bad input never produces a 500: every route, fed junk, answers a 4xx in the error contract."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.helpers.api import register

JUNK_IDS = ["abc", "0", "-1", "99999999999999999999", "1.5", "%00", "%27%20OR%201=1", "core.%2e%2e", "a" * 300]
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
JUNK_QUERIES = ["limit=abc", "offset=-5", "limit=99999999999999999999", "status=%00", "trigger_id=x", "enabled=maybe"]


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

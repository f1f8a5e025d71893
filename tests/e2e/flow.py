"""Helpers for the event-pipeline e2e tests: webhooks, rules, packs, and deadline polls.

Everything here talks to the running cloud over HTTP, as a client would. Polls
end on a deadline and say what they last saw (and where the cloud's log is),
so a failure in CI reads as a bug report rather than "timed out".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import yaml

from tests.e2e.client import Cloud, User

T = TypeVar("T")
FINAL = frozenset({"succeeded", "succeeded_with_errors", "failed", "canceled"})
PIPELINE_TIMEOUT_S = 60.0

# A python3 action whose output is exactly the parameters it was given.
RETURN_PARAMS_PY = """\
def run(**params):
    return params
"""


def unique_ref(prefix: str) -> str:
    """A pack/rule ref no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def sign(secret: str, body: bytes) -> str:
    """The `X-Attune-Signature` value for `body`: `sha256=<hex HMAC-SHA256(secret, body)>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(
    cloud: Cloud,
    trigger_id: int | str,
    payload: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST an event to a webhook, with no bearer token (webhooks are called by outside systems)."""
    body = raw if raw is not None else json.dumps(payload).encode()
    return cloud.http.post(
        f"/api/v1/webhooks/{trigger_id}",
        content=body,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def fire(cloud: Cloud, trigger_id: int | str, payload: Any) -> int:
    """POST an event to an unsigned webhook; its event id."""
    resp = post_webhook(cloud, trigger_id, payload)
    assert resp.status_code == 202, (resp.status_code, resp.text)
    event_id = resp.json()["event_id"]
    assert isinstance(event_id, int)
    return event_id


def action_files(name: str, runner_type: str, code: str, parameters: dict[str, Any] | None = None) -> dict[str, str]:
    """The two files of one pack action: its YAML and its entry point."""
    ext = {"python3": "py", "shell": "sh"}[runner_type]
    spec: dict[str, Any] = {"name": name, "runner_type": runner_type, "entry_point": f"{name}.{ext}"}
    if parameters:
        spec["parameters"] = parameters
    return {f"actions/{name}.yaml": yaml.safe_dump(spec, sort_keys=False), f"actions/{name}.{ext}": code}


def register_pack(user: User, ref: str, files: dict[str, str]) -> dict[str, Any]:
    """Register a pack from inline files; the pack as the API answers it."""
    resp = user.post("/api/v1/packs", {"ref": ref, "version": "1.0.0", "files": files})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def webhook_trigger(user: User, **extra: Any) -> dict[str, Any]:
    """A new webhook trigger."""
    resp = user.post("/api/v1/triggers", {"type": "webhook", **extra})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def create_rule(
    user: User,
    trigger_id: int,
    action_ref: str,
    *,
    criteria: str | None = None,
    parameters: dict[str, Any] | None = None,
    ref: str | None = None,
) -> dict[str, Any]:
    """A new enabled rule."""
    body: dict[str, Any] = {"trigger_id": trigger_id, "action_ref": action_ref, "ref": ref or unique_ref("rule")}
    if criteria is not None:
        body["criteria"] = criteria
    if parameters is not None:
        body["parameters"] = parameters
    resp = user.post("/api/v1/rules", body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def items(user: User, path: str, **params: Any) -> list[dict[str, Any]]:
    """One list call (up to 1000 items), filtered."""
    resp = user.get(path, params={"limit": 1000, **params})
    assert resp.status_code == 200, (path, params, resp.text)
    return list(resp.json()["items"])


def poll(probe: Callable[[], T | None], what: str, cloud: Cloud, timeout: float = PIPELINE_TIMEOUT_S) -> T:
    """Call `probe` until it returns something truthy; fail on the deadline with what it last saw."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        value = probe()
        if value:
            return value
        last = value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}; last seen {last!r}; cloud log: {cloud.log_path}"
            )
        time.sleep(0.1)


def wait_many(fetch: Callable[[], list[dict[str, Any]]], count: int, what: str, cloud: Cloud) -> list[dict[str, Any]]:
    """Poll a list until it holds at least `count` items; the list."""

    def probe() -> list[dict[str, Any]] | None:
        got = fetch()
        return got if len(got) >= count else None

    return poll(probe, what, cloud)


def get_execution(user: User, execution_id: int) -> dict[str, Any]:
    """One execution."""
    resp = user.get(f"/api/v1/executions/{execution_id}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def wait_final(user: User, execution_id: int, timeout: float = PIPELINE_TIMEOUT_S) -> dict[str, Any]:
    """The execution once it has reached a final status."""
    seen: list[dict[str, Any]] = []

    def probe() -> dict[str, Any] | None:
        execution = get_execution(user, execution_id)
        seen[:] = [execution]
        return execution if execution["status"] in FINAL else None

    try:
        return poll(probe, f"execution {execution_id} to finish", user.cloud, timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nexecution: {seen[-1] if seen else None}") from None


def run_action(user: User, action_ref: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """POST an execution and wait for it to finish."""
    resp = user.post("/api/v1/executions", {"action_ref": action_ref, "parameters": parameters})
    assert resp.status_code == 201, resp.text
    return wait_final(user, resp.json()["id"])


def enforcements(user: User, **filters: Any) -> list[dict[str, Any]]:
    """Enforcements matching the filters (`rule_id`, `event_id`, `trigger_id`)."""
    return items(user, "/api/v1/enforcements", **filters)


def matched_events(user: User, rule_id: int) -> set[int]:
    """The events a rule made enforcements for."""
    return {e["event_id"] for e in enforcements(user, rule_id=rule_id)}


def wait_evaluated(user: User, sentinel_rule_id: int, event_ids: list[int]) -> None:
    """Wait until the rules engine has evaluated every event.

    A criteria rule that does not match leaves no trace, so each test hangs a
    criteria-less sentinel rule on the same trigger: the engine evaluates all of
    a trigger's rules for an event in one pass, so once the sentinel's
    enforcement for an event exists, every other rule has had its say on it.
    """
    want = set(event_ids)
    poll(
        lambda: want <= matched_events(user, sentinel_rule_id),
        f"the rules engine to evaluate events {sorted(want)}",
        user.cloud,
    )


def execution_for(user: User, enforcement_id: int) -> dict[str, Any]:
    """The one execution an enforcement made (waits for it to appear)."""
    found = poll(
        lambda: items(user, "/api/v1/executions", enforcement_id=enforcement_id),
        f"the execution of enforcement {enforcement_id}",
        user.cloud,
    )
    assert len(found) == 1, found
    return found[0]


def audit_trail(user: User, execution_id: int) -> list[dict[str, Any]]:
    """The execution's audit entries, oldest first."""
    entries = items(user, "/api/v1/audit", execution_id=execution_id)
    return sorted(entries, key=lambda e: e["id"])


def actions_of(trail: list[dict[str, Any]]) -> list[str]:
    """The `action` names of audit entries, in order."""
    return [entry["action"] for entry in trail]

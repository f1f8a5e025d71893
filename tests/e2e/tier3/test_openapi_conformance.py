"""The running API conforms to its own OpenAPI document (issue 15, item 4), checked by schemathesis.

The document is the one the code generates, and the first test checks the
running cloud serves exactly it at `/api/v1/openapi.json`. Then, for every
operation, schemathesis sends a bounded number of generated requests (its
examples, coverage and fuzzing phases: valid and invalid ones) as a real
tenant's admin (admins are exempt from the 10 requests/s per-user limit the
e2e cloud sets; /auth/* and webhooks are called without a token, as outsiders
call them). Each response must not be a 5xx and must have a status,
Content-Type, headers and body the document declares for that operation.
Random path ids only ever find 404s, so every operation with path parameters
is also called with the generated request aimed at a real resource of the
tenant (a pack, action, trigger, rule, event, enforcement, execution,
datastore key, user; a fresh one for a DELETE), and the last test checks
that the reads and deletes did succeed, so success bodies were validated
too, not only errors.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    is_unexpected_http_status_case,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import app
from chalicelib.api.openapi import document
from tests.e2e.client import Cloud, User
from tests.e2e.flow import create_rule, poll, register_pack, unique_ref, webhook_trigger
from tests.e2e.packs import echo_pack

# Alone on the cloud (tests/e2e/run.py): its last test checks what the module's other tests saw, so they
# must run in one process in order; and its bursts would crowd the parallel tests' API.
pytestmark = pytest.mark.serial

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Generated examples per operation and phase: enough to reach every parameter, few enough for < 2 min here.
MAX_EXAMPLES = int(os.environ.get("ATTUNE_CONFORMANCE_EXAMPLES", "5"))
# Operation label -> the statuses it answered, for the final check that success paths were exercised.
SEEN: dict[str, set[int]] = {}
# A DELETE removes what it is aimed at, so each gets a fresh resource: for its first few cases only (each costs
# creating one), the rest aim at random ids like every other generated request.
FRESH_DELETES = 2
FRESH: Counter[str] = Counter()
# The path parameters `real_ids` aims at a real resource (inquiries and sensors are only ever 404 here).
REAL_NAMES = {"pack_id", "action_id", "trigger_id", "rule_id", "event_id", "enforcement_id", "execution_id", "key",
              "user_id"}


@pytest.fixture(scope="module")
def tenant(cloud: Cloud) -> User:
    """The tenant admin every generated request authenticates as."""
    return cloud.register("conformance")


def _pack(user: User) -> dict[str, Any]:
    ref = unique_ref("oas")
    return register_pack(user, ref, echo_pack(ref)["files"])


def _created(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


@pytest.fixture(scope="module")
def real_ids(cloud: Cloud, tenant: User) -> dict[str, str]:
    """Path parameter name -> a real resource of the tenant, so generated requests also hit the success paths."""
    pack = _pack(tenant)
    action_ref = pack["actions"][0]
    trigger = webhook_trigger(tenant)
    rule = create_rule(tenant, trigger["id"], action_ref, parameters={"message": "{{ trigger.payload.message }}"})
    accepted = httpx.post(f"{cloud.url}/api/v1/webhooks/{trigger['id']}", json={"message": "hi"}, timeout=30)
    assert accepted.status_code == 202, accepted.text
    event_id = accepted.json()["event_id"]

    def enforced() -> dict[str, Any] | None:
        found = tenant.get("/api/v1/enforcements", params={"event_id": event_id}).json()["items"]
        return found[0] if found else None

    enforcement = poll(enforced, "the rule's enforcement of the webhook event", cloud)
    execution = _created(tenant.post("/api/v1/executions", {"action_ref": action_ref, "parameters": {"message": "x"}}))
    _created(tenant.post("/api/v1/datastore", {"key": "conformance-key", "value": {"a": 1}}))
    return {
        "pack_id": str(pack["id"]),
        "action_id": str(tenant.get(f"/api/v1/actions/{action_ref}").json()["id"]),
        "trigger_id": str(trigger["id"]),
        "rule_id": str(rule["id"]),
        "event_id": str(event_id),
        "enforcement_id": str(enforcement["id"]),
        "execution_id": str(execution["id"]),
        "key": "conformance-key",
        "user_id": str(_user(tenant)["id"]),
        # The webhook's own trigger: generated PATCHes of `trigger_id` may give the shared one a secret.
        "webhook_trigger_id": str(webhook_trigger(tenant)["id"]),
    }


def _aim(case: Case, name: str) -> str:
    return "webhook_trigger_id" if case.operation.path.startswith("/api/v1/webhooks/") else name


def _user(tenant: User) -> dict[str, Any]:
    return _created(tenant.post("/api/v1/users", {"username": unique_ref("oas-user"), "password": "a-password-123",
                                                  "role": "viewer"}))


def _disposable(tenant: User, name: str, real: dict[str, str]) -> str | None:
    """A fresh resource for a DELETE to remove, so the reads that follow still find the shared ones."""
    if name == "pack_id":
        return str(_pack(tenant)["id"])
    if name == "action_id":
        return str(tenant.get(f"/api/v1/actions/{_pack(tenant)['actions'][0]}").json()["id"])
    if name == "trigger_id":
        return str(webhook_trigger(tenant)["id"])
    if name == "rule_id":
        return str(create_rule(tenant, int(real["trigger_id"]), "core.echo", parameters={"message": "x"})["id"])
    if name == "key":
        key = unique_ref("oas-key")
        _created(tenant.post("/api/v1/datastore", {"key": key, "value": 1}))
        return key
    if name == "user_id":
        return str(_user(tenant)["id"])
    return None


def _schema() -> Any:
    """The document the code generates, loaded at collection so each operation is its own test item.

    `test_the_served_document_is_the_generated_one` ties it to what the running API serves.
    """
    loaded = schemathesis.openapi.from_dict(document(app))
    loaded.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
    loaded.config.phases.update(phases=["examples", "coverage", "fuzzing"])
    return loaded


schema = _schema()


def test_the_served_document_is_the_generated_one(cloud: Cloud) -> None:
    """GIVEN the running API WHEN its document is fetched THEN it is the one generated from the code."""
    served = httpx.get(f"{cloud.url}/api/v1/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/json")
    assert served.json() == json.loads(json.dumps(document(app)))


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_the_document(
    case: Case, cloud: Cloud, tenant: User, real_ids: dict[str, str]
) -> None:
    """GIVEN the served document WHEN each operation gets generated requests as a tenant admin (and, with
    path parameters, the same request aimed at a real resource) THEN every response is declared: no 5xx,
    a documented status, Content-Type, headers and body."""
    # The token goes where the document requires one; webhooks and /auth/* are called as outsiders call them.
    needs_token = case.operation.definition.raw.get("security") == [{"bearer": []}]
    auth = {"Authorization": f"Bearer {tenant.token}"} if needs_token else {}
    # Request-shape probes (a wrong method, a mangled path) are checked for 5xx only, and not counted.
    probe = is_unexpected_http_status_case(case)
    seen = SEEN.setdefault(case.operation.label, set())
    status = case.call_and_validate(base_url=cloud.url, headers=auth, checks=CHECKS).status_code
    if not probe:
        seen.add(status)
    if case.path_parameters and not probe:
        label = case.operation.label
        if case.method != "DELETE":
            aimed = {name: real_ids.get(_aim(case, name), value) for name, value in case.path_parameters.items()}
        elif FRESH[label] < FRESH_DELETES:
            FRESH[label] += 1
            aimed = {name: _disposable(tenant, name, real_ids) or value for name, value in case.path_parameters.items()}
        else:
            return
        case.path_parameters = aimed
        seen.add(case.call_and_validate(base_url=cloud.url, headers=auth, checks=CHECKS).status_code)


def test_every_operation_was_exercised() -> None:
    """GIVEN the run above THEN every operation was called, and the reads answered a success at least once
    (so their success bodies were validated, not only their errors)."""
    operations = {op.label for op in (r.ok() for r in schema.get_all_operations())}
    assert set(SEEN) == operations, operations - set(SEEN)
    # Reads and deletes of what real_ids names (and the lists) must have succeeded at least once.
    must_succeed = [label for label in SEEN if label.split()[0] in {"GET", "DELETE"}
                    and set(re.findall(r"{(\w+)}", label)) <= REAL_NAMES]
    must_succeed += ["POST /api/v1/webhooks/{trigger_id}", "POST /api/v1/packs/{pack_id}/reload"]
    without_success = sorted(label for label in must_succeed if not any(200 <= c < 300 for c in SEEN[label]))
    assert not without_success, {label: SEEN[label] for label in without_success}
    print({label: sorted(codes) for label, codes in sorted(SEEN.items())})  # shown with -s

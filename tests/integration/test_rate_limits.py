"""Rate limits through the real app (PostgreSQL + moto): users, webhooks, logins and the password-hash bound.

Each test sets tight limits in the environment (the settings cache is
cleared), so a handful of requests reaches them; the authentication
buckets refill slowly (one token per 20 s), since each login spends a
third of a second hashing and a faster refill would blur the count. Waiting out a Retry-After
window is the behaviour under test, not a wait for the system.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from chalice.local import LambdaEventConverter

from chalicelib import accounts
from chalicelib.config import settings
from chalicelib.core.auth import verify_password
from chalicelib.db import ratelimits
from chalicelib.local.api_server import create_server, load_app, serve_until
from tests.conftest import free_port
from tests.helpers.api import ApiUser, register

pytestmark = pytest.mark.integration
JSON = {"Content-Type": "application/json"}
PASSWORD = "correct-horse-battery"


@pytest.fixture
def limits(api: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Set limit settings for this test: `limits(ATTUNE_RATE_LIMIT_BURST=3, ...)`."""

    def apply(**env: float | int) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, str(value))
        settings.cache_clear()

    yield apply
    settings.cache_clear()


@pytest.fixture
def source_ip(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Make the in-process gateway report `requestContext.identity.sourceIp` as the given address."""
    return lambda address: monkeypatch.setattr(LambdaEventConverter, "LOCAL_SOURCE_IP", address)


def _member(admin: ApiUser, role: str = "viewer") -> ApiUser:
    username = f"{admin.username}-{role}-{uuid.uuid4().hex[:4]}"
    status, body = admin.post("/api/v1/users", {"username": username, "password": PASSWORD, "role": role})
    assert status == 201, body
    resp = _login(admin.client, username, PASSWORD)
    assert resp.status_code == 200, resp.body
    return ApiUser(admin.client, username, json.loads(resp.body)["access_token"], admin.tenant_id)


def _login(api: Any, username: str, password: str) -> Any:
    return api.http.post("/auth/login", headers=JSON, body=json.dumps({"username": username, "password": password}))


def _get(user: ApiUser, path: str = "/api/v1/packs") -> Any:
    return user.client.http.get(path, headers={"Authorization": f"Bearer {user.token}"})


def _assert_limited(resp: Any, *, max_retry_after: int) -> int:
    """A 429 in the error contract with a whole-second Retry-After; the Retry-After."""
    assert resp.status_code == 429, (resp.status_code, resp.body)
    body = json.loads(resp.body)
    assert set(body) == {"error"} and body["error"]["code"] == "rate_limited", body
    assert body["error"]["message"], body
    retry_after = resp.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit(), resp.headers
    assert 1 <= int(retry_after) <= max_retry_after, retry_after
    return int(retry_after)


# -- users -------------------------------------------------------------------------------------------------------


def test_over_the_limit_a_user_gets_429_with_retry_after_and_the_contract(api: Any, limits: Any) -> None:
    # GIVEN a burst of 3 and one token back every 2 s
    limits(ATTUNE_RATE_LIMIT_PER_S=0.5, ATTUNE_RATE_LIMIT_BURST=3)
    viewer = _member(register(api, "rl"))
    # WHEN the viewer sends 5 requests at once THEN 3 pass and the rest are refused
    statuses = [_get(viewer) for _ in range(5)]
    assert [r.status_code for r in statuses[:3]] == [200, 200, 200]
    retry_after = _assert_limited(statuses[3], max_retry_after=2)
    _assert_limited(statuses[4], max_retry_after=2)
    assert "rate limit" in json.loads(statuses[3].body)["error"]["message"]
    # AND after Retry-After one more request passes, and the next is refused again
    time.sleep(retry_after)
    assert _get(viewer).status_code == 200
    _assert_limited(_get(viewer), max_retry_after=2)


def test_admins_are_exempt(api: Any, limits: Any) -> None:
    limits(ATTUNE_RATE_LIMIT_PER_S=0.5, ATTUNE_RATE_LIMIT_BURST=2)
    admin = register(api, "rl-admin")
    assert [_get(admin).status_code for _ in range(12)] == [200] * 12


def test_an_admin_demoted_after_its_token_was_issued_is_limited_at_once(api: Any, db: str, limits: Any) -> None:
    # Roles are read from the database on every call; the exemption follows it, not the token's claim
    limits(ATTUNE_RATE_LIMIT_PER_S=0.5, ATTUNE_RATE_LIMIT_BURST=2)
    admin = register(api, "rl-demoted")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE attune.app_user SET role = 'viewer' WHERE lower(username) = lower(%s)", (admin.username,))
    assert [_get(admin).status_code for _ in range(2)] == [200, 200]
    _assert_limited(_get(admin), max_retry_after=2)


def test_each_user_has_a_bucket_of_its_own(api: Any, limits: Any) -> None:
    limits(ATTUNE_RATE_LIMIT_PER_S=0.5, ATTUNE_RATE_LIMIT_BURST=2)
    admin = register(api, "rl-iso")
    noisy, quiet = _member(admin), _member(admin, "editor")
    other_tenant = _member(register(api, "rl-iso2"))
    # GIVEN one user over its limit
    for _ in range(2):
        assert _get(noisy).status_code == 200
    _assert_limited(_get(noisy), max_retry_after=2)
    # THEN a user of the same tenant, and one of another tenant, are untouched
    assert [_get(quiet).status_code for _ in range(2)] == [200, 200]
    assert [_get(other_tenant).status_code for _ in range(2)] == [200, 200]


def test_requests_that_fail_spend_their_token_too(api: Any, limits: Any) -> None:
    # A 404 rolls its transaction back; the token was taken apart from it, so a flood of errors is limited
    limits(ATTUNE_RATE_LIMIT_PER_S=0.5, ATTUNE_RATE_LIMIT_BURST=3)
    viewer = _member(register(api, "rl-404"))
    assert [_get(viewer, "/api/v1/actions/no.such").status_code for _ in range(3)] == [404] * 3
    _assert_limited(_get(viewer), max_retry_after=2)


def test_invalid_tokens_are_401_not_counted(api: Any, limits: Any) -> None:
    limits(ATTUNE_RATE_LIMIT_PER_S=0.5, ATTUNE_RATE_LIMIT_BURST=1)
    resp = api.http.get("/api/v1/packs", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401


# -- webhooks ----------------------------------------------------------------------------------------------------


def _webhook(api: Any, trigger_id: int) -> Any:
    return api.http.post(f"/api/v1/webhooks/{trigger_id}", headers=JSON, body=json.dumps({"n": 1}))


def test_a_flood_of_one_webhook_does_not_starve_another(api: Any, limits: Any) -> None:
    limits(ATTUNE_WEBHOOK_RATE_LIMIT_PER_S=0.5, ATTUNE_WEBHOOK_RATE_LIMIT_BURST=3)
    flooded_owner, other_owner = register(api, "rl-hook-a"), register(api, "rl-hook-b")
    _, flooded = flooded_owner.post("/api/v1/triggers", {"type": "webhook"})
    _, same_tenant = flooded_owner.post("/api/v1/triggers", {"type": "webhook"})
    _, other = other_owner.post("/api/v1/triggers", {"type": "webhook"})
    # GIVEN one trigger flooded past its burst
    answers = [_webhook(api, flooded["id"]) for _ in range(6)]
    assert [r.status_code for r in answers[:3]] == [202] * 3
    for resp in answers[3:]:
        _assert_limited(resp, max_retry_after=2)
    assert "webhook" in json.loads(answers[3].body)["error"]["message"]
    # THEN another tenant's webhook, and another webhook of the same tenant, still take events
    assert _webhook(api, other["id"]).status_code == 202
    assert _webhook(api, same_tenant["id"]).status_code == 202
    # AND only the events let through were stored
    status, events = flooded_owner.get(f"/api/v1/events?trigger_id={flooded['id']}")
    assert status == 200 and events["total"] == 3


# -- authentication ----------------------------------------------------------------------------------------------


def test_repeated_wrong_passwords_back_off_and_the_right_one_works_after(api: Any, limits: Any) -> None:
    limits(ATTUNE_LOGIN_BACKOFF_AFTER=5)
    user = register(api, "rl-guess")
    # GIVEN five wrong passwords in a row: each an ordinary 401
    for i in range(5):
        assert _login(api, user.username, f"wrong-password-{i}").status_code == 401
    # WHEN a sixth try comes at once, even with the right password, THEN 429 with a short Retry-After
    _assert_limited(_login(api, user.username, "wrong-password-6"), max_retry_after=2)
    retry_after = _assert_limited(_login(api, user.username.upper(), PASSWORD), max_retry_after=2)
    # AND once it has passed, the right password works and the count starts over
    time.sleep(retry_after)
    assert _login(api, user.username, PASSWORD).status_code == 200
    for i in range(5):
        assert _login(api, user.username, f"wrong-again-{i}").status_code == 401


def test_an_unknown_user_name_backs_off_exactly_like_a_known_one(api: Any, limits: Any) -> None:
    limits(ATTUNE_LOGIN_BACKOFF_AFTER=2)
    known = register(api, "rl-known")
    answers = []
    for name in (known.username, f"ghost-{uuid.uuid4().hex[:8]}"):
        seq = [_login(api, name, "wrong-password") for _ in range(3)]
        answers.append([(r.status_code, json.loads(r.body)["error"]["code"]) for r in seq])
    known_answers, unknown_answers = answers
    assert known_answers == unknown_answers == [(401, "unauthorized"), (401, "unauthorized"), (429, "rate_limited")]


def test_logins_are_limited_per_client_address(api: Any, limits: Any, source_ip: Any) -> None:
    limits(ATTUNE_AUTH_RATE_LIMIT_PER_S=0.05, ATTUNE_AUTH_RATE_LIMIT_BURST=3)
    user = register(api, "rl-addr")  # registered from the default address
    # GIVEN one address trying three different names
    source_ip("198.51.100.7")
    for i in range(3):
        assert _login(api, f"spray-{i}-{uuid.uuid4().hex[:6]}", "wrong-password").status_code == 401
    # THEN its fourth attempt is refused, whatever the name
    resp = _login(api, user.username, PASSWORD)
    _assert_limited(resp, max_retry_after=20)
    assert "address" in json.loads(resp.body)["error"]["message"]
    # AND the real user, from another address, logs in
    source_ip("203.0.113.9")
    assert _login(api, user.username, PASSWORD).status_code == 200


def test_logins_are_limited_per_user_name_across_addresses(api: Any, limits: Any, source_ip: Any) -> None:
    limits(ATTUNE_AUTH_RATE_LIMIT_PER_S=0.05, ATTUNE_AUTH_RATE_LIMIT_BURST=5)
    user = register(api, "rl-name")  # its register and first login take 2 of the name's 5 tokens
    for i in range(3):
        source_ip(f"192.0.2.{i + 1}")
        assert _login(api, user.username, PASSWORD).status_code == 200
    source_ip("192.0.2.99")
    resp = _login(api, user.username, PASSWORD)
    _assert_limited(resp, max_retry_after=20)
    assert "user name" in json.loads(resp.body)["error"]["message"]


def test_registration_is_limited_per_client_address(api: Any, limits: Any, source_ip: Any) -> None:
    limits(ATTUNE_AUTH_RATE_LIMIT_PER_S=0.05, ATTUNE_AUTH_RATE_LIMIT_BURST=2)
    source_ip("198.51.100.20")

    def reg() -> Any:
        body = {"username": f"rl-reg-{uuid.uuid4().hex[:8]}", "password": PASSWORD}
        return api.http.post("/auth/register", headers=JSON, body=json.dumps(body))

    assert [reg().status_code for _ in range(2)] == [201, 201]
    _assert_limited(reg(), max_retry_after=20)


# -- the password-hash bound -------------------------------------------------------------------------------------


@pytest.fixture
def gateway(api: Any) -> Iterator[str]:
    """The app behind the local HTTP gateway (one thread per connection), for truly concurrent requests."""
    port = free_port()
    server = create_server(load_app(), "127.0.0.1", port)
    stop = threading.Event()
    thread = threading.Thread(target=serve_until, args=(server, stop), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    stop.set()
    thread.join(10)


def test_concurrent_logins_hash_within_the_bound_and_the_rest_get_503(
    api: Any, limits: Any, gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one hash slot and a short queue
    limits(ATTUNE_PASSWORD_HASH_CONCURRENCY=1, ATTUNE_PASSWORD_HASH_WAIT_S=0.2)
    user = register(api, "rl-hash")
    running, peak, lock = [0], [0], threading.Lock()
    verify = verify_password

    def counting_verify(stored: str | None, password: str) -> bool:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            return verify(stored, password)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(accounts, "verify_password", counting_verify)
    start = threading.Barrier(16)
    answers: list[httpx.Response] = []

    def attempt() -> None:
        with httpx.Client(base_url=gateway, timeout=60) as client:
            start.wait()
            resp = client.post("/auth/login", json={"username": user.username, "password": PASSWORD})
        with lock:
            answers.append(resp)

    # WHEN 16 logins arrive at once
    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    # THEN never more than one hash ran at a time; the others queued briefly, then got a 503 with Retry-After
    assert len(answers) == 16 and peak[0] == 1
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
    for resp in answers:
        if resp.status_code == 503:
            assert resp.json()["error"]["code"] == "unavailable" and resp.headers["Retry-After"] == "1"


# -- housekeeping ------------------------------------------------------------------------------------------------


def test_prune_deletes_full_buckets_and_forgotten_failures_only(api: Any, db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("""INSERT INTO attune.rate_limit (key, full_at) VALUES
                        ('user:full', now() - interval '1 second'), ('user:busy', now() + interval '1 minute')""")
        conn.execute("""INSERT INTO attune.login_failure (username, failures, last_failed) VALUES
                        ('old', 9, now() - interval '1 day'), ('recent', 9, now())""")
    assert ratelimits.prune() == 2
    with psycopg.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT key FROM attune.rate_limit")] == ["user:busy"]
        assert [r[0] for r in conn.execute("SELECT username FROM attune.login_failure")] == ["recent"]

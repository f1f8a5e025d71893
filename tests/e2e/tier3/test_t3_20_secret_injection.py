"""T3.20 Secret injection: a `secret: true` parameter reaches the action on stdin only.

The secret is given directly and, through a rule, rendered from an
encrypted datastore item. The action proves it received it (its length and
SHA-256, never the value) and reports whether the value is in its own
/proc/self/environ or /proc/self/cmdline, or in those of any process it can
see (its PID namespace). While it runs, the test also reads, from the host,
the environ and cmdline of every process on the machine (the worker's, the
sandbox's, the action's). Afterwards the value is in none of the API's views
(the execution, the list, the audit, the enforcement), not in the execution's
row at rest (its parameters hold the mask, its sealed copy no plaintext), and
not in the cloud's log. An action that prints its secret has it masked in
the stored stdout and stderr.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.e2e.client import Cloud, User
from tests.e2e.flow import (
    create_rule,
    enforcements,
    execution_for,
    fire,
    get_execution,
    items,
    poll,
    register_pack,
    unique_ref,
    wait_final,
    webhook_trigger,
)
from tests.helpers.procs import execution_processes

MASK = "********"

USE_KEY_PY = r'''
import hashlib, os, sys, time
import attune_action


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def run(api_key, label, echo=False):
    secret = api_key.encode()
    own = {name: _read(f"/proc/self/{name}") for name in ("environ", "cmdline")}
    seen, leaks = 0, []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        for name in ("environ", "cmdline"):
            data = _read(f"/proc/{pid}/{name}")
            if data is not None:
                seen += 1
                if secret in data:
                    leaks.append(f"{pid}/{name}")
    print(f"received a secret of {len(api_key)} characters for {label}")
    if echo:
        print(f"the secret is {api_key}")
        print(f"the secret is {api_key}", file=sys.stderr)
    attune_action.datastore_set("running", True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not attune_action.datastore_get("inspected"):
        time.sleep(0.1)
    return {
        "length": len(api_key),
        "sha256": hashlib.sha256(secret).hexdigest(),
        "label": label,
        "read_own": {name: data is not None for name, data in own.items()},
        "own_environ_has_pythonpath": b"PYTHONPATH=" in (own["environ"] or b""),
        "in_own": [name for name, data in own.items() if data is not None and secret in data],
        # (a zygote-forked action's /proc/self/environ is the zygote's: its environment as set after the fork)
        "in_os_environ": [k for k, v in os.environ.items() if api_key in k or api_key in v],
        "proc_files_read": seen,
        "leaks": leaks,
    }
'''


def _secret() -> str:
    return f"secret123-{uuid.uuid4().hex}"


def _pack(user: User) -> tuple[str, str]:
    """A pack whose action `use_<hex>` declares `api_key` secret; (the action's ref, its name: the host's tag)."""
    name = f"use_key_{uuid.uuid4().hex[:8]}"  # its entry point is on the action's command line
    spec = {
        "name": name,
        "runner_type": "python3",
        "entry_point": f"{name}.py",
        "parameters": {
            "api_key": {"type": "string", "required": True, "secret": True},
            "label": {"type": "string", "required": True},
            "echo": {"type": "boolean", "default": False},
        },
    }
    ref = unique_ref("t320")
    register_pack(user, ref, {f"actions/{name}.yaml": yaml.safe_dump(spec), f"actions/{name}.py": USE_KEY_PY})
    return f"{ref}.{name}", name


def _processes() -> dict[int, dict[str, bytes]]:
    """Every host process's environ and cmdline that can be read (the test runs as root: all of them)."""
    found: dict[int, dict[str, bytes]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        files = {}
        for name in ("environ", "cmdline"):
            try:
                files[name] = (entry / name).read_bytes()
            except OSError:
                continue
        if files:
            found[int(entry.name)] = files
    return found


def _inspect_while_running(user: User, execution_id: int, secret: str, tag: str) -> None:
    """Once the action runs: no process on the host has the secret in its environment or command line."""
    def running() -> bool:
        if user.get("/api/v1/datastore/running").status_code == 200:
            return True
        assert get_execution(user, execution_id)["status"] not in ("succeeded", "failed", "canceled")
        return False

    poll(running, f"execution {execution_id}'s action to run", user.cloud)
    try:
        processes = _processes()
        # (by its tag on a cold start's command line, or by its execution: a zygote-forked one has the zygote's)
        action = [pid for pid, files in processes.items() if tag.encode() in files.get("cmdline", b"")] \
            or execution_processes(execution_id)
        # (the check below can fail: the action's own process is there, with its environment readable)
        assert action and all(b"PYTHONPATH=" in processes.get(pid, {}).get("environ", b"") for pid in action), action
        leaks = [(pid, name) for pid, files in processes.items() for name, data in files.items()
                 if secret.encode() in data]
        assert leaks == [], leaks
    finally:
        assert user.post("/api/v1/datastore", {"key": "inspected", "value": True}).status_code in (200, 201)


def _check_received(execution: dict[str, Any], secret: str, label: str) -> None:
    # THEN the action received the secret (its length and hash prove it) and ran to success
    assert execution["status"] == "succeeded", execution["result"]
    report = execution["result"]["output"]
    assert report["length"] == len(secret) and report["sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert report["label"] == label
    assert f"received a secret of {len(secret)} characters for {label}" in execution["result"]["stdout"]
    # AND it is not in the action's own environ or cmdline (both read: the check could have found it)
    assert report["read_own"] == {"environ": True, "cmdline": True}, report
    assert report["own_environ_has_pythonpath"], report
    assert report["in_own"] == [] and report["in_os_environ"] == [], report
    # AND not in the environ or cmdline of any process the action sees
    assert report["proc_files_read"] >= 2 and report["leaks"] == [], report


def _check_never_shown(cloud: Cloud, user: User, execution_id: int, secret: str) -> dict[str, Any]:
    """The secret is in no API view of the execution, not in its row at rest, not in the cloud's log."""
    execution = get_execution(user, execution_id)
    # THEN the API shows the mask in its place, in the execution and in the list
    assert execution["parameters"]["api_key"] == MASK, execution["parameters"]
    assert secret not in json.dumps(execution)
    listed = [e for e in items(user, "/api/v1/executions") if e["id"] == execution_id]
    assert len(listed) == 1 and listed[0]["parameters"]["api_key"] == MASK
    assert secret not in json.dumps(listed)
    # AND the audit trail never holds it (and does describe the execution, so it was looked at)
    trail = items(user, "/api/v1/audit", execution_id=execution_id)
    assert {"execution.created", "execution.started", "execution.completed"} <= {e["action"] for e in trail}
    assert secret not in json.dumps(trail)
    # AND the row at rest holds the mask, and its sealed copy is not the plaintext
    if cloud.database_url is None:
        pytest.fail("the local cloud did not publish its database URL in cloud.json")
    with psycopg.connect(cloud.database_url) as conn:
        row = conn.execute(
            "SELECT t::text, secret_parameters FROM attune.execution t WHERE id = %s AND tenant_id = %s",
            (execution_id, user.tenant_id),
        ).fetchone()
        audit_rows = conn.execute(
            "SELECT string_agg(a::text, '|') FROM attune.audit_log a WHERE entity_type = 'execution' "
            "AND entity_id = %s AND tenant_id = %s",
            (str(execution_id), user.tenant_id),
        ).fetchone()
    assert row is not None and audit_rows is not None
    text, sealed = row
    assert secret not in text and MASK in text
    assert sealed is not None and secret.encode() not in bytes(sealed)
    assert audit_rows[0] and secret not in audit_rows[0]
    # AND the cloud's log (every role's output) never printed it
    assert cloud.log_path is not None
    assert secret not in cloud.log_path.read_text(errors="replace")
    return execution


def test_a_secret_given_directly_reaches_only_the_action(cloud: Cloud) -> None:
    # GIVEN an action declaring `api_key` secret
    user = cloud.register("t320")
    action_ref, tag = _pack(user)
    secret = _secret()
    # WHEN it is executed with the secret given directly
    resp = user.post("/api/v1/executions", {"action_ref": action_ref,
                                            "parameters": {"api_key": secret, "label": "direct"}})
    assert resp.status_code == 201, resp.text
    # THEN the creation's answer already shows the mask
    assert resp.json()["parameters"]["api_key"] == MASK and secret not in resp.text
    execution_id = resp.json()["id"]
    # AND while it runs, no process on the host carries it in its environment or command line
    _inspect_while_running(user, execution_id, secret, tag)
    _check_received(wait_final(user, execution_id), secret, "direct")
    _check_never_shown(cloud, user, execution_id, secret)


def test_a_secret_rendered_by_a_rule_from_the_datastore_reaches_only_the_action(cloud: Cloud) -> None:
    # GIVEN the seed's secret in the datastore, encrypted, and a rule rendering it into the secret parameter
    user = cloud.register("t320-rule")
    action_ref, tag = _pack(user)
    secret = _secret()
    assert user.post("/api/v1/datastore", {"key": "api_key", "value": secret, "encrypted": True}).status_code in (
        200, 201)
    trigger = webhook_trigger(user)
    rule = create_rule(user, trigger["id"], action_ref,
                       parameters={"api_key": "{{ datastore.api_key }}", "label": "{{ trigger.data.label }}"})
    # WHEN the webhook fires
    fire(cloud, trigger["id"], {"label": "by-rule"})
    found = poll(lambda: enforcements(user, rule_id=rule["id"]), "the enforcement", cloud)
    execution_id = execution_for(user, found[0]["id"])["id"]
    # THEN while it runs, no process on the host carries it in its environment or command line
    _inspect_while_running(user, execution_id, secret, tag)
    _check_received(wait_final(user, execution_id), secret, "by-rule")
    _check_never_shown(cloud, user, execution_id, secret)
    # AND the enforcement that rendered it does not show it either
    assert secret not in json.dumps(enforcements(user, rule_id=rule["id"]))


def test_a_secret_the_action_prints_is_masked_in_its_output(cloud: Cloud) -> None:
    # GIVEN the same action, asked to print its secret on stdout and stderr
    user = cloud.register("t320-echo")
    action_ref, _tag = _pack(user)
    secret = _secret()
    assert user.post("/api/v1/datastore", {"key": "inspected", "value": True}).status_code in (200, 201)
    resp = user.post("/api/v1/executions", {"action_ref": action_ref,
                                            "parameters": {"api_key": secret, "label": "echo", "echo": True}})
    assert resp.status_code == 201, resp.text
    execution = wait_final(user, resp.json()["id"])
    assert execution["status"] == "succeeded", execution["result"]
    # THEN the stored stdout and stderr have the mask where the action printed the value
    result = execution["result"]
    assert f"the secret is {MASK}" in result["stdout"], result["stdout"]
    assert f"the secret is {MASK}" in result["stderr"], result["stderr"]
    _check_never_shown(cloud, user, execution["id"], secret)

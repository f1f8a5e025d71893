"""Issue 9: the platform's internals are useless to tenant code.

A tenant's python3 action, run by the real local cloud, tries what a hostile
tenant would: PostgreSQL over TCP (127.0.0.1:5432), and the local AWS
endpoint (moto) with no credentials, with the made-up `testing`/`testing`
pair every moto tutorial uses, and through moto's own unauthenticated admin
API (`/moto-api/data.json` dumps every model, `/moto-api/reset-auth` switches
authentication off). Every attempt must be refused, and the platform must
keep working afterwards (core.echo still succeeds: the platform's own
credentials still work, auth was not switched off by the attempt).

The SigV4 signing is done by hand inside the action (hmac/hashlib), so the
probe does not depend on botocore being importable in the action's runtime.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from chalicelib.aws import names
from tests.e2e.client import Cloud
from tests.e2e.flow import action_files, register_pack, run_action, unique_ref

PROBE_PY = r'''
import datetime, hashlib, hmac, json, socket, urllib.error, urllib.request


def _tcp(host, port):
    try:
        with socket.create_connection((host, port), timeout=3):
            return "connected"
    except OSError as exc:
        return "refused: " + type(exc).__name__


def _sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _call(url, target, service, body, region, creds):
    """One AWS JSON-protocol call, SigV4-signed with `creds` (or unsigned when None)."""
    data = json.dumps(body).encode()
    host = url.split("://", 1)[1].rstrip("/")
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target,
               "X-Amz-Date": amz_date, "Host": host}
    if creds is not None:
        signed = "content-type;host;x-amz-date;x-amz-target"
        canonical = "\n".join([
            "POST", "/", "",
            "content-type:" + headers["Content-Type"], "host:" + host, "x-amz-date:" + amz_date,
            "x-amz-target:" + target, "", signed, hashlib.sha256(data).hexdigest()])
        scope = f"{day}/{region}/{service}/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = _sign(_sign(_sign(_sign(("AWS4" + creds[1]).encode(), day), region), service), "aws4_request")
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds[0]}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={signature}")
    return _http(urllib.request.Request(url.rstrip("/") + "/", data=data, headers=headers, method="POST"))


def _http(req):
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return {"status": resp.status, "body": resp.read(4000).decode("utf-8", "replace")}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": exc.read(4000).decode("utf-8", "replace")}
    except OSError as exc:
        return {"status": 0, "body": type(exc).__name__ + ": " + str(exc)}


def run(moto_url, secret_id, region):
    out = {"pg_tcp_5432": _tcp("127.0.0.1", 5432)}
    # moto's admin API first: if it could switch auth off, every later attempt would pass.
    out["reset_auth"] = _http(urllib.request.Request(moto_url + "/moto-api/reset-auth", data=b"inf",
                                                     method="POST"))
    out["data_json"] = _http(urllib.request.Request(moto_url + "/moto-api/data.json"))
    calls = {
        "secret": ("secretsmanager.GetSecretValue", "secretsmanager", {"SecretId": secret_id}),
        "kms": ("TrentService.ListKeys", "kms", {}),
        "sqs": ("AmazonSQS.ListQueues", "sqs", {}),
    }
    for name, (target, service, body) in calls.items():
        out[name + "_unsigned"] = _call(moto_url, target, service, body, region, None)
        out[name + "_testing"] = _call(moto_url, target, service, body, region, ("testing", "testing"))
        out[name + "_made_up_akia"] = _call(moto_url, target, service, body, region,
                                            ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"))
    return out
'''

PROBE_PARAMS = {
    "moto_url": {"type": "string", "required": True},
    "secret_id": {"type": "string", "required": True},
    "region": {"type": "string", "required": True},
}


def _cloud_info(cloud: Cloud) -> dict[str, Any]:
    """What the running cloud published about itself (its cloud.json, next to its log)."""
    if cloud.log_path is None:
        pytest.skip("needs a cloud started by the e2e fixture (cloud.json with its moto URL)")
    info_path = Path(cloud.log_path).parent / "cloud.json"
    info: dict[str, Any] = json.loads(info_path.read_text())
    if not info.get("aws_endpoint_url") or not info.get("moto_pid"):
        pytest.skip("the cloud uses an outside AWS endpoint (LocalStack?), not its own moto")
    return info


def _refused(outcome: dict[str, Any]) -> bool:
    """An AWS call the endpoint refused: a 4xx that carries no data."""
    return 400 <= int(outcome["status"]) < 500 and "SecretString" not in outcome["body"] \
        and "KeyId" not in outcome["body"] and "QueueUrls" not in outcome["body"]


def test_the_platform_internals_refuse_tenant_code(cloud: Cloud) -> None:
    info = _cloud_info(cloud)
    moto_url = str(info["aws_endpoint_url"])
    tenant = cloud.register("barrier")
    ref = unique_ref("barrier")
    register_pack(tenant, ref, action_files("probe", "python3", PROBE_PY, PROBE_PARAMS))

    # WHEN the tenant's action tries the platform's internals
    execution = run_action(tenant, f"{ref}.probe", {
        "moto_url": moto_url, "secret_id": names.jwt_secret_id(), "region": "us-east-1"})
    assert execution["status"] == "succeeded", execution.get("result")
    out = execution["result"]["output"]

    # THEN PostgreSQL is not reachable over TCP
    assert out["pg_tcp_5432"].startswith("refused"), out["pg_tcp_5432"]
    # AND moto's admin API neither switches authentication off nor dumps the models
    assert out["reset_auth"]["status"] == 403, out["reset_auth"]
    assert out["data_json"]["status"] == 403, out["data_json"]
    assert "secret_string" not in out["data_json"]["body"]
    # AND Secrets Manager, KMS and SQS refuse unsigned and made-up credentials alike
    for name in ("secret", "kms", "sqs"):
        for variant in ("unsigned", "testing", "made_up_akia"):
            outcome = out[f"{name}_{variant}"]
            assert _refused(outcome), (name, variant, outcome)

    # AND the platform, with its own credentials, still works: an execution succeeds after
    echo = run_action(tenant, "core.echo", {"message": "still here"})
    assert echo["status"] == "succeeded", echo
    assert echo["result"]["output"] == {"message": "still here"}


def test_embedded_postgres_listens_on_no_tcp_port(cloud: Cloud) -> None:
    info = _cloud_info(cloud)
    if not info.get("postgres_pid"):
        pytest.skip("the cloud uses an outside PostgreSQL")
    postmaster = psutil.Process(int(info["postgres_pid"]))
    # THEN neither the postmaster nor any of its backends has a TCP socket listening
    procs = [postmaster, *postmaster.children(recursive=True)]
    listening = [(p.pid, c.laddr) for p in procs for c in p.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening == [], listening
    # AND its unix socket is what the platform's database URL names
    assert "host=/" in str(info["database_url"]) or "%2F" in str(info["database_url"]), info["database_url"]
    with psycopg.connect(str(info["database_url"]), connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # AND a TCP connection to the default port finds nothing
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="attune", connect_timeout=3)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 5432), timeout=3).close()

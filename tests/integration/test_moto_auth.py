"""The local cloud's moto under IAM authentication (issue 9): the platform's key works, nothing else does.

Each test starts its own moto child exactly as `attune dev` does
(`moto_server.start(..., credentials=...)`) and talks to it over real HTTP
with boto3 — or, for unsigned requests and moto's admin API, with urllib.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
from botocore.exceptions import ClientError

from chalicelib.aws.clients import reset_clients
from chalicelib.config import settings
from chalicelib.local import moto_server
from chalicelib.local.provision import provision

REGION = "us-east-1"
FAKE_KEYS = {
    "testing": ("testing", "testing"),
    "made-up AKIA": ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
}


@pytest.fixture(name="state_dir")
def state_dir_fixture() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="attune-moto-auth-") as folder:
        yield Path(folder)


@pytest.fixture(name="authed")
def authed_fixture() -> Iterator[moto_server.MotoServer]:
    """A moto child that requires the platform's key, as `attune dev` starts it."""
    server = moto_server.start(moto_server.free_port(), credentials=moto_server.Credentials.generate())
    yield server
    server.stop()


def _client(server: moto_server.MotoServer, service: str, key: tuple[str, str] | None = None) -> Any:
    creds = server.credentials
    assert creds is not None
    key_id, secret = key or (creds.access_key_id, creds.secret_access_key)
    return boto3.client(service, endpoint_url=server.url, region_name=REGION,  # type: ignore[call-overload]
                        aws_access_key_id=key_id, aws_secret_access_key=secret)


def _raw(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
         method: str = "GET") -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - a local moto URL
            return int(resp.status), resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode("utf-8", "replace")


# service -> one read call the platform makes (or could make) on it
READS: dict[str, Callable[[Any], Any]] = {
    "sqs": lambda c: c.list_queues(),
    "s3": lambda c: c.list_buckets(),
    "kms": lambda c: c.list_keys(),
    "secretsmanager": lambda c: c.list_secrets(),
    "scheduler": lambda c: c.list_schedules(),
    "stepfunctions": lambda c: c.list_state_machines(),
    "iam": lambda c: c.list_users(),
}


@pytest.mark.parametrize("service", sorted(READS))
def test_the_platform_key_works_and_made_up_keys_are_refused(authed: moto_server.MotoServer, service: str) -> None:
    # GIVEN a moto requiring authentication
    # THEN the platform's key may call the service
    READS[service](_client(authed, service))
    # AND made-up keys are refused with an authentication error, not served
    for label, key in FAKE_KEYS.items():
        with pytest.raises(ClientError) as caught:
            READS[service](_client(authed, service, key))
        status = caught.value.response["ResponseMetadata"]["HTTPStatusCode"]
        assert status == 403, (label, caught.value.response)


def test_the_jwt_secret_is_readable_only_with_the_platform_key(authed: moto_server.MotoServer) -> None:
    sm = _client(authed, "secretsmanager")
    sm.create_secret(Name="attune/jwt-signing-key", SecretString="the-signing-key")
    assert sm.get_secret_value(SecretId="attune/jwt-signing-key")["SecretString"] == "the-signing-key"
    for key in FAKE_KEYS.values():
        with pytest.raises(ClientError):
            _client(authed, "secretsmanager", key).get_secret_value(SecretId="attune/jwt-signing-key")
    # AND an unsigned request is refused before moto sees it
    status, body = _raw(authed.url + "/", data=json.dumps({"SecretId": "attune/jwt-signing-key"}).encode(),
                        headers={"X-Amz-Target": "secretsmanager.GetSecretValue",
                                 "Content-Type": "application/x-amz-json-1.1"}, method="POST")
    assert status == 403 and "the-signing-key" not in body, (status, body)


def test_mutations_with_the_platform_key_work_including_scheduler_gets(authed: moto_server.MotoServer) -> None:
    # Scheduler's GETs failed moto's signature check until the child fixed how it rebuilds them.
    sched = _client(authed, "scheduler")
    sched.create_schedule_group(Name="g1")
    assert sched.get_schedule_group(Name="g1")["Name"] == "g1"
    sched.create_schedule(Name="s1", GroupName="g1", ScheduleExpression="rate(1 minute)",
                          FlexibleTimeWindow={"Mode": "OFF"},
                          Target={"Arn": "arn:aws:sqs:us-east-1:123456789012:q",
                                  "RoleArn": "arn:aws:iam::123456789012:role/r"})
    assert sched.get_schedule(Name="s1", GroupName="g1")["Name"] == "s1"
    sched.delete_schedule(Name="s1", GroupName="g1")
    s3 = _client(authed, "s3")
    s3.create_bucket(Bucket="bucket-one")
    s3.put_object(Bucket="bucket-one", Key="k", Body=b"v")
    assert s3.get_object(Bucket="bucket-one", Key="k")["Body"].read() == b"v"
    s3.head_object(Bucket="bucket-one", Key="k")
    s3.delete_object(Bucket="bucket-one", Key="k")


@pytest.mark.parametrize("path,body", [("/moto-api/reset-auth", b"inf"), ("/moto-api/data.json", None),
                                       ("/moto-api/reset", b""), ("/moto-api/config", None),
                                       ("//moto-api/reset-auth", b"inf")])
def test_the_moto_admin_api_is_closed(authed: moto_server.MotoServer, path: str, body: bytes | None) -> None:
    sm = _client(authed, "secretsmanager")
    sm.create_secret(Name="kept", SecretString="still-here")
    # WHEN someone without credentials tries moto's admin API
    status, text = _raw(authed.url + path, data=body, method="POST" if body is not None else "GET")
    # THEN it is refused, and nothing it could have done happened
    assert status == 403, (status, text)
    assert "still-here" not in text
    assert sm.get_secret_value(SecretId="kept")["SecretString"] == "still-here"  # not reset
    with pytest.raises(ClientError):  # authentication still on
        _client(authed, "secretsmanager", FAKE_KEYS["testing"]).list_secrets()


def test_step_functions_call_back_to_sqs_under_auth(authed: moto_server.MotoServer) -> None:
    # GIVEN a state machine whose task sends to SQS (moto runs it and calls itself back)
    sqs = _client(authed, "sqs")
    url = sqs.create_queue(QueueName="sfn-target")["QueueUrl"]
    definition = {"StartAt": "Send", "States": {"Send": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
        "Parameters": {"QueueUrl": url, "MessageBody.$": "$.body"}, "End": True}}}
    sfn = _client(authed, "stepfunctions")
    arn = sfn.create_state_machine(name="send", definition=json.dumps(definition),
                                   roleArn="arn:aws:iam::123456789012:role/states")["stateMachineArn"]
    # WHEN it is executed
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"body": "from-sfn"}))["executionArn"]
    deadline = time.monotonic() + 30
    status = "RUNNING"
    while status == "RUNNING" and time.monotonic() < deadline:
        status = sfn.describe_execution(executionArn=execution)["status"]
        time.sleep(0.1)
    # THEN it succeeded and the message arrived (its callback was signed with the platform's key)
    assert status == "SUCCEEDED", sfn.get_execution_history(executionArn=execution)["events"][-3:]
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5).get("Messages", [])
    assert [m["Body"] for m in got] == ["from-sfn"]


def test_the_key_is_not_in_the_moto_process_environment_or_argv(authed: moto_server.MotoServer) -> None:
    assert authed.credentials is not None
    proc = psutil.Process(authed.process.pid)
    secret = authed.credentials.secret_access_key
    assert secret not in " ".join(proc.cmdline())
    assert secret not in json.dumps(proc.environ())
    assert proc.environ().get("INITIAL_NO_AUTH_ACTION_COUNT") == "0"
    assert secret not in repr(authed.credentials)


def test_kms_keys_and_pack_objects_survive_a_restart_with_a_new_key(state_dir: Path) -> None:
    # GIVEN a moto under auth with a KMS key and a kept pack object
    first = moto_server.start(moto_server.free_port(), state_dir=state_dir, kept_buckets=["kept-packs"],
                              credentials=moto_server.Credentials.generate())
    try:
        kms = _client(first, "kms")
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/attune-data", TargetKeyId=key_id)
        blob = kms.encrypt(KeyId="alias/attune-data", Plaintext=b"secret")["CiphertextBlob"]
        s3 = _client(first, "s3")
        s3.create_bucket(Bucket="kept-packs")
        s3.put_object(Bucket="kept-packs", Key="p/pack.tar.gz", Body=b"pack-bytes")
        saved = state_dir / "moto-kms.json"
        deadline = time.monotonic() + 10
        while not (saved.exists() and key_id in saved.read_text()):
            assert time.monotonic() < deadline, "the KMS key was never saved"
            time.sleep(0.05)
    finally:
        first.stop()
    # WHEN moto is started alone again with a different platform key (a new `attune dev`)
    second = moto_server.start(moto_server.free_port(), state_dir=state_dir, kept_buckets=["kept-packs"],
                               credentials=moto_server.Credentials.generate())
    try:
        assert second.credentials != first.credentials
        # THEN the old key is refused, the new one decrypts the old ciphertext and reads the old object
        assert first.credentials is not None
        with pytest.raises(ClientError):
            _client(second, "kms", (first.credentials.access_key_id, first.credentials.secret_access_key)).list_keys()
        assert _client(second, "kms").decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"
        body = _client(second, "s3").get_object(Bucket="kept-packs", Key="p/pack.tar.gz")["Body"].read()
        assert body == b"pack-bytes"
    finally:
        second.stop()


def test_provision_creates_the_whole_stack_under_auth(authed: moto_server.MotoServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the platform's environment as `attune dev` sets it for the roles
    assert authed.credentials is not None
    monkeypatch.setenv("AWS_ENDPOINT_URL", authed.url)
    for name, value in authed.credentials.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("ATTUNE_STACK_NAME", "authstack")
    monkeypatch.delenv("ATTUNE_PACK_BUCKET", raising=False)
    settings.cache_clear()
    reset_clients()
    try:
        # WHEN the template is provisioned, twice (every start does)
        first = provision()
        second = provision()
    finally:
        settings.cache_clear()
        reset_clients()
    # THEN every resource exists, identically, and is invisible to a made-up key
    assert first == second
    assert "JwtSigningKey" in first and "DataKey" in first
    assert any("authstack" in u for u in _client(authed, "sqs").list_queues().get("QueueUrls", []))
    with pytest.raises(ClientError):
        _client(authed, "sqs", FAKE_KEYS["testing"]).list_queues()


def test_without_credentials_moto_stays_open_for_tests_own_emulators() -> None:
    # The conftest_aws moto (no credentials given) keeps accepting the dummy key.
    server = moto_server.start(moto_server.free_port())
    try:
        assert server.credentials is None
        boto3.client("sqs", endpoint_url=server.url, region_name=REGION,
                     aws_access_key_id="testing", aws_secret_access_key="testing").list_queues()
        assert os.environ.get("INITIAL_NO_AUTH_ACTION_COUNT") is None
    finally:
        server.stop()

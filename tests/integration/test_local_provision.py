"""The local provisioner creates exactly infra/template.yaml's resources, idempotently."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from chalicelib.aws import names
from chalicelib.aws.clients import client
from chalicelib.local import provision as prov
from chalicelib.local.resources import generate_secret_string
from tests.integration.conftest_aws import aws_stack_fixture, moto_server_fixture  # noqa: F401

pytestmark = pytest.mark.integration

QUEUES = ["events", "work", "notifications", "timer-fires", "workflow-callbacks", "workflow-tasks", "sensor-polls"]


def _queue_names(stack: str) -> list[str]:
    urls = client("sqs").list_queues(QueueNamePrefix=stack).get("QueueUrls", [])
    return sorted(url.rsplit("/", 1)[1] for url in urls)


def _customer_keys_of(stack: str) -> list[str]:
    kms = client("kms")
    found = []
    for key in kms.list_keys()["Keys"]:
        tags = kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])
        if {"TagKey": "attune:stack", "TagValue": stack} in tags:
            found.append(key["KeyId"])
    return found


def test_provisions_exactly_the_template_and_twice_changes_nothing(aws_stack: str) -> None:
    # GIVEN the stack's template
    template = prov.load_template()
    expected = prov.local_resources(template)

    # WHEN it is provisioned twice
    first = prov.provision()
    secret_value = client("secretsmanager").get_secret_value(SecretId=names.jwt_secret_id())
    second = prov.provision()

    # THEN every local resource of the template was created, and nothing else
    assert set(first) == set(expected)
    assert second == first
    assert _queue_names(aws_stack) == sorted(
        [names.queue_name(q) for q in QUEUES] + [names.dlq_name(q) for q in QUEUES]
    )
    assert len(_customer_keys_of(aws_stack)) == 1
    again = client("secretsmanager").get_secret_value(SecretId=names.jwt_secret_id())
    assert again["SecretString"] == secret_value["SecretString"]
    assert len(secret_value["SecretString"]) == 64
    assert secret_value["SecretString"].isalnum()
    client("s3").head_bucket(Bucket=names.pack_bucket())
    aliases = client("kms").list_aliases()["Aliases"]
    assert [a["TargetKeyId"] for a in aliases if a["AliasName"] == names.data_key_alias()] == [
        first["DataKey"]
    ]


def test_queues_have_their_dead_letter_queues(aws_stack: str) -> None:
    prov.provision()
    sqs = client("sqs")
    for queue in QUEUES:
        url = sqs.get_queue_url(QueueName=names.queue_name(queue))["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        dlq_url = sqs.get_queue_url(QueueName=names.dlq_name(queue))["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(
            QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = json.loads(attrs["RedrivePolicy"])
        assert policy["deadLetterTargetArn"] == dlq_arn
        assert int(policy["maxReceiveCount"]) == 5
        assert int(attrs["VisibilityTimeout"]) >= 30


def test_the_ticker_schedule_targets_the_ticker_function(aws_stack: str) -> None:
    prov.provision()
    found = client("scheduler").get_schedule(Name=f"{aws_stack}-timers-ticker", GroupName=aws_stack)
    assert found["ScheduleExpression"] == "rate(1 minute)"
    assert found["State"] == "ENABLED"
    assert found["Target"]["Arn"].endswith(f":function:{aws_stack}-timers-ticker")
    assert found["Target"]["RoleArn"].endswith(f":role/{aws_stack}-scheduler")
    handlers = prov.lambda_handlers(prov.load_template(), stack=aws_stack)
    assert handlers[f"{aws_stack}-timers-ticker"] == "functions.timers.app.ticker_handler"
    assert handlers[f"{aws_stack}-worker"] == "functions.worker.app.handler"


def test_a_schedule_a_local_role_replaces_is_not_provisioned(aws_stack: str) -> None:
    # GIVEN the template, whose relay schedule names the local role doing its work
    from chalicelib.local.roles import ROLES

    template = prov.load_template()
    replaced = {k: prov.local_role(b) for k, b in template["Resources"].items() if prov.local_role(b)}
    # (and the action runner's role and log group: locally the worker runs actions in its sandbox;
    # and the Chalice functions' roles: locally the api and ws roles run app.py)
    chalice_roles = dict.fromkeys(
        ("ApiHandlerRole", "WebsocketConnectRole", "WebsocketMessageRole", "WebsocketDisconnectRole"), "api")
    assert replaced == {"RelaySchedule": "relay", "ActionRunnerRole": "worker", "ActionRunnerLogGroup": "worker",
                        **chalice_roles}
    assert set(replaced.values()) <= set(ROLES)
    # WHEN it is provisioned
    prov.provision()
    # THEN only the ticker is scheduled (the local scheduler must not run the relay beside its role),
    # and the relay function still maps to its handler
    schedules = client("scheduler").list_schedules(GroupName=aws_stack)["Schedules"]
    assert [s["Name"] for s in schedules] == [f"{aws_stack}-timers-ticker"]
    handlers = prov.lambda_handlers(template, stack=aws_stack)
    assert handlers[f"{aws_stack}-relay"] == "functions.relay.app.handler"
    role_names = {r["RoleName"] for r in client("iam").list_roles()["Roles"]}
    assert f"{aws_stack}-ActionRunnerRole" not in role_names


def _write(tmp_path: Path, resources: Mapping[str, object]) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump({"Resources": resources}), encoding="utf-8")
    return path


def test_an_unknown_resource_type_is_an_error(aws_stack: str, tmp_path: Path) -> None:
    path = _write(tmp_path, {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {}}})
    with pytest.raises(prov.ProvisionError, match="AWS::SNS::Topic"):
        prov.provision(path)


def test_state_machines_are_created_then_updated(aws_stack: str, tmp_path: Path) -> None:
    # GIVEN a template whose ASL file takes a queue URL by substitution
    (tmp_path / "flow.asl.json").write_text(json.dumps({
        "StartAt": "Done", "States": {"Done": {"Type": "Pass", "Result": "${QueueUrl}", "End": True}},
    }), encoding="utf-8")
    resources = {
        "Callbacks": {"Type": "AWS::SQS::Queue",
                      "Properties": {"QueueName": {"Fn::Sub": "${AWS::StackName}-cb"}}},
        "Flow": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
            "StateMachineName": {"Fn::Sub": "${AWS::StackName}-flow"},
            "RoleArn": {"Fn::Sub": "arn:aws:iam::${AWS::AccountId}:role/states"},
            "DefinitionS3Location": "flow.asl.json",
            "DefinitionSubstitutions": {"QueueUrl": {"Ref": "Callbacks"}},
        }},
    }
    path = _write(tmp_path, resources)

    # WHEN it is provisioned twice
    first = prov.provision(path)
    second = prov.provision(path)

    # THEN one state machine exists, with the substituted definition
    assert first == second
    sfn = client("stepfunctions")
    described = sfn.describe_state_machine(stateMachineArn=first["Flow"])
    assert first["Callbacks"] in described["definition"]
    machines = [m for m in sfn.list_state_machines()["stateMachines"]
                if m["name"] == f"{aws_stack}-flow"]
    assert len(machines) == 1


def test_generated_secrets_follow_the_spec() -> None:
    value = generate_secret_string({"PasswordLength": 40, "ExcludePunctuation": True,
                                    "ExcludeCharacters": "abc"})
    assert len(value) == 40
    assert value.isalnum()
    assert not set("abc") & set(value)
    doc = json.loads(generate_secret_string({"SecretStringTemplate": '{"user": "x"}',
                                             "GenerateStringKey": "password"}))
    assert doc["user"] == "x"
    assert len(doc["password"]) == 32


def test_references_drive_the_order() -> None:
    value = {"A": {"Ref": "Queue"}, "B": {"Fn::GetAtt": ["Dlq", "Arn"]},
             "C": {"Fn::Sub": "${AWS::StackName}-${Bucket}-${Key.Arn}-${!Literal}"}}
    assert prov.references(value) == {"Queue", "Dlq", "Bucket", "Key"}

"""Least privilege: every function's role grants exactly what its code calls, read from infra/template.yaml.

`USES` is the table of what each function calls, derived from the code: the
chalicelib.aws helpers its handler reaches (`chalicelib.aws.queues` sends and
resolves queue URLs, `kms` seals and opens, `secrets` reads the JWT key,
`storage` reads/writes/presigns pack archives, `schedules` manages sensor
schedules, `lambdas` invokes the runner, `states` drives Step Functions,
`websocket` posts to connections) and, for SQS, which logical queues the
modules it runs enqueue to (`enqueue(cur, "<queue>", ...)`, `queues.send_batch`).
The test fails both ways: a right the table does not list (too broad), and
a call the table lists that the template does not grant (broken on AWS).
A second test checks the table against the code itself: a function may only
hold rights on services whose adapter its handler's imports reach.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"

SEND = ("sqs:SendMessage", "sqs:GetQueueUrl")
SEALS = {"kms:Decrypt": {"DataKey"}, "kms:GenerateDataKey": {"DataKey"}}
JWT = {"secretsmanager:GetSecretValue": {"JwtSigningKey"}}
SENSOR_SCHEDULES = "scheduler:schedule/${AWS::StackName}/${AWS::StackName}-sensor-*"
WF_MACHINES = "states:stateMachine:${AWS::StackName}-wf-*"
WF_EXECUTIONS = "states:execution:${AWS::StackName}-wf-*:*"


def sends(*queues: str) -> dict[str, set[str]]:
    return {action: {f"{q}Queue" for q in queues} for action in SEND}


def logs(function: str) -> dict[str, set[str]]:
    group = f"logs:log-group:/aws/lambda/${{AWS::StackName}}-{function}-*"
    return {a: {group} for a in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")}


# function logical id -> action -> resources (logical ids, or ARNs without partition/region/account)
USES: dict[str, dict[str, set[str]]] = {
    "APIHandler": {
        **logs("APIHandler"), **JWT, **SEALS,
        **sends("Events", "Work", "Notifications", "WorkflowTasks", "WorkflowCallbacks", "TimerFires"),
        "s3:GetObject": {"PackBucket/*"}, "s3:PutObject": {"PackBucket/*"}, "s3:ListBucket": {"PackBucket"},
        **{f"scheduler:{op}Schedule": {SENSOR_SCHEDULES} for op in ("Create", "Update", "Get", "Delete")},
        "iam:PassRole": {"SchedulerRole"},
    },
    "WebsocketConnect": {**logs("WebsocketConnect"), **JWT},
    "WebsocketMessage": logs("WebsocketMessage"),
    "WebsocketDisconnect": logs("WebsocketDisconnect"),
    "RulesFunction": {**sends("Work", "WorkflowTasks", "Notifications"), **SEALS},
    "WorkerFunction": {
        **sends("Work", "Notifications", "WorkflowCallbacks"), "sqs:ChangeMessageVisibility": {"WorkQueue"},
        "s3:GetObject": {"PackBucket/*"}, **SEALS, **JWT, "lambda:InvokeFunction": {"ActionRunnerFunction"},
    },
    "ActionRunnerFunction": {"logs:CreateLogStream": {"ActionRunnerLogGroup"},
                             "logs:PutLogEvents": {"ActionRunnerLogGroup"}},
    "TimersFunction": sends("Events"),
    "TimersTickerFunction": sends("TimerFires"),
    "SensorsFunction": {
        **sends("Events", "SensorPolls"), "s3:GetObject": {"PackBucket/*"},
        "lambda:InvokeFunction": {"ActionRunnerFunction"}, "scheduler:DeleteSchedule": {SENSOR_SCHEDULES},
    },
    "WorkflowFunction": {
        **sends("Work", "Notifications", "WorkflowTasks", "WorkflowCallbacks"), **SEALS,
        "states:CreateStateMachine": {WF_MACHINES}, "states:StartExecution": {WF_MACHINES},
        "states:ListStateMachines": {"*"},
        "states:StopExecution": {WF_EXECUTIONS}, "states:DescribeExecution": {WF_EXECUTIONS},
        # Task tokens name no resource: IAM checks these callbacks against "*".
        "states:SendTaskSuccess": {"*"}, "states:SendTaskFailure": {"*"},
        "iam:PassRole": {"WorkflowStatesRole"},
    },
    "WorkflowCallbacksFunction": {"states:SendTaskSuccess": {"*"}, "states:SendTaskFailure": {"*"}},
    "NotifierFunction": {
        "execute-api:ManageConnections": {"execute-api:${WebsocketAPI}/${WebsocketAPIStage}/POST/@connections/*"},
    },
    "RelayFunction": {
        **sends("Events", "Work", "Notifications", "TimerFires", "WorkflowCallbacks", "WorkflowTasks"),
        "states:DescribeExecution": {WF_EXECUTIONS}, "states:StopExecution": {WF_EXECUTIONS},
        "states:SendTaskFailure": {"*"},
    },
}
# Chalice generates these functions (app.py) with one role each; the template declares the roles.
CHALICE_ROLES = {"APIHandler": "ApiHandlerRole", "WebsocketConnect": "WebsocketConnectRole",
                 "WebsocketMessage": "WebsocketMessageRole", "WebsocketDisconnect": "WebsocketDisconnectRole"}
# Which adapter a right is used through (logs: the Lambda runtime itself; PassRole: the service it hands a role to).
ADAPTER = {"sqs": "queues", "kms": "kms", "secretsmanager": "secrets", "s3": "storage", "scheduler": "schedules",
           "lambda": "lambdas", "states": "states", "execute-api": "websocket"}
PASSES_ROLE_TO = {"SchedulerRole": "schedules", "WorkflowStatesRole": "states"}
PREFIX = "arn:${AWS::Partition}:"
ACCOUNT = "${AWS::Region}:${AWS::AccountId}:"


def template() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text())
    return found


def resource_key(value: Any) -> str:
    """A statement's resource as the table writes it: a logical id, or an ARN without partition and account."""
    if value == "*":
        return "*"
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        name, attr = value["Fn::GetAtt"]
        assert attr == "Arn", value
        return str(name)
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        text = str(value["Fn::Sub"])
        if text.startswith("${") and ".Arn}" in text:
            return text[2:].replace(".Arn}", "", 1)
        assert text.startswith(PREFIX), f"an ARN of this partition: {text}"
        service, _, rest = text[len(PREFIX):].partition(":")
        assert rest.startswith(ACCOUNT), f"an ARN of this account and region: {text}"
        return f"{service}:{rest[len(ACCOUNT):]}"
    raise AssertionError(f"unexpected resource {value!r}")


def statements(tpl: dict[str, Any], function: str) -> list[dict[str, Any]]:
    """Every statement the function's role holds: SAM `Policies` of inline statements, or its own role's."""
    resources = tpl["Resources"]
    role = CHALICE_ROLES.get(function)
    props = resources[function]["Properties"] if role is None else {}
    if "Role" in props:
        role = props["Role"]["Fn::GetAtt"][0]
    if role is not None:
        found = []
        for policy in resources[role]["Properties"]["Policies"]:
            found += policy["PolicyDocument"]["Statement"]
        assert "ManagedPolicyArns" not in resources[role]["Properties"]
        return found
    found = []
    for policy in props.get("Policies", []):
        assert isinstance(policy, dict) and set(policy) == {"Statement"}, (
            f"{function}: only inline statements, so this table sees every right (no SAM policy templates): {policy}")
        found += policy["Statement"]
    return found


def grants(tpl: dict[str, Any], function: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for statement in statements(tpl, function):
        assert statement["Effect"] == "Allow" and set(statement) == {"Effect", "Action", "Resource"}, statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in actions:
            assert "*" not in action, f"{function}: no wildcard actions ({action})"
            found.setdefault(action, set()).update(resource_key(t) for t in targets)
    return found


def functions(tpl: dict[str, Any]) -> list[str]:
    declared = [k for k, v in tpl["Resources"].items() if v["Type"] == "AWS::Serverless::Function"]
    return sorted([*declared, *CHALICE_ROLES])


def test_the_table_covers_every_function() -> None:
    assert set(functions(template())) == set(USES)


@pytest.mark.parametrize("function", sorted(USES))
def test_each_role_grants_exactly_what_its_function_calls(function: str) -> None:
    assert grants(template(), function) == USES[function]


# ------------------------------------------------------------------------- the table against the code --
def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("chalicelib")}


def reached_adapters(entry: Path) -> set[str]:
    """The chalicelib.aws modules a handler file's imports reach (transitively, at any depth)."""
    seen: set[str] = set()
    todo = [("app", entry)]
    while todo:
        module, path = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in _imports(path, module):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                sub = ".".join(parts[:i])
                found = _module_file(sub)
                if found is not None and sub not in seen:
                    todo.append((sub, found))
    return {m.split(".")[2] for m in seen if m.startswith("chalicelib.aws.") and m.count(".") == 2}


def handler_file(tpl: dict[str, Any], function: str) -> Path:
    if function in CHALICE_ROLES:
        return ROOT / "app.py"
    return ROOT / tpl["Resources"][function]["Properties"]["CodeUri"] / "app.py"


@pytest.mark.parametrize("function", sorted(USES))
def test_every_right_is_on_a_service_the_handlers_code_reaches(function: str) -> None:
    tpl = template()
    reached = reached_adapters(handler_file(tpl, function))
    for action, resources in USES[function].items():
        service = action.split(":")[0]
        if service == "logs":
            continue
        needed = {PASSES_ROLE_TO[r] for r in resources} if action == "iam:PassRole" else {ADAPTER[service]}
        assert needed <= reached, f"{function} may {action} but its code never reaches {needed - reached}"


def test_the_runner_role_may_only_write_its_own_logs() -> None:
    assert set(USES["ActionRunnerFunction"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    env = template()["Resources"]["ActionRunnerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["ATTUNE_DATABASE_URL"] == "" and env["ATTUNE_PACK_BUCKET"] == ""


def test_sensor_polls_on_aws_go_to_the_runner_function() -> None:
    env = template()["Resources"]["SensorsFunction"]["Properties"]["Environment"]["Variables"]
    assert env["ATTUNE_ACTION_RUNNER_FUNCTION"] == {"Ref": "ActionRunnerFunction"}
    assert env["ATTUNE_SANDBOX"] == "required", "never a local, unconfined poll on Lambda"

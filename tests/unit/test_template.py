"""infra/template.yaml deploys code that exists: every function's CodeUri and Handler resolve here.

`chalice package` and `aws cloudformation package` upload a CodeUri that does
not exist without complaint only at deploy time; these checks catch it on a
laptop. The template is read exactly as the local provisioner reads it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.local import provision as prov

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")


def _functions() -> dict[str, dict[str, Any]]:
    """Logical id -> properties of every function, with the template's Globals applied."""
    template = prov.load_template(REPO_ROOT / "infra" / "template.yaml")
    globals_fn = template.get("Globals", {}).get("Function", {})
    return {
        logical: {**globals_fn, **body.get("Properties", {})}
        for logical, body in template["Resources"].items()
        if body["Type"] in FUNCTION_TYPES
    }


FUNCTIONS = _functions()


def test_the_template_declares_functions() -> None:
    # A loader that silently found nothing would make the checks below pass vacuously.
    assert {"RulesFunction", "WorkerFunction", "TimersTickerFunction", "RelayFunction"} <= set(FUNCTIONS)


@pytest.mark.parametrize("logical", sorted(FUNCTIONS))
def test_code_uri_is_a_folder_with_app_py(logical: str) -> None:
    code_uri = FUNCTIONS[logical].get("CodeUri")
    assert isinstance(code_uri, str), f"{logical} has no CodeUri"
    folder = REPO_ROOT / code_uri
    assert folder.is_dir(), f"{logical}: CodeUri {code_uri} does not exist"
    assert (folder / "app.py").is_file(), f"{logical}: {code_uri}/app.py does not exist"


@pytest.mark.parametrize("logical", sorted(FUNCTIONS))
def test_handler_names_a_function_of_its_module(logical: str) -> None:
    props = FUNCTIONS[logical]
    module_name, _, attr = str(props["Handler"]).rpartition(".")
    package = ".".join(Path(props["CodeUri"]).parts)
    assert (REPO_ROOT / props["CodeUri"] / f"{module_name.replace('.', '/')}.py").is_file(), props["Handler"]
    module = importlib.import_module(f"{package}.{module_name}")
    assert callable(getattr(module, attr, None)), f"{logical}: {package}.{props['Handler']} is not a function"


def test_the_relay_runs_every_minute_and_is_replaced_locally_by_its_role() -> None:
    template = prov.load_template(REPO_ROOT / "infra" / "template.yaml")
    schedule = template["Resources"]["RelaySchedule"]
    assert schedule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert schedule["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": ["RelayFunction", "Arn"]}
    assert prov.local_role(schedule) == "relay"
    assert "RelaySchedule" not in prov.local_resources(template)
    # The schedule's role may invoke what it targets.
    statements = template["Resources"]["SchedulerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    invokable = next(s["Resource"] for s in statements if s["Action"] == "lambda:InvokeFunction")
    assert {"Fn::GetAtt": ["RelayFunction", "Arn"]} in invokable


def test_short_tags_read_as_their_long_form(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        "Resources:\n"
        "  Q:\n"
        "    Type: AWS::SQS::Queue\n"
        "    Properties:\n"
        "      QueueName: !Sub '${AWS::StackName}-q'\n"
        "      RedrivePolicy: {deadLetterTargetArn: !GetAtt Dlq.Arn, other: !Ref Dlq,"
        " joined: !Join ['-', [a, !Ref Dlq]]}\n",
        encoding="utf-8",
    )
    props = prov.load_template(path)["Resources"]["Q"]["Properties"]
    assert props["QueueName"] == {"Fn::Sub": "${AWS::StackName}-q"}
    assert props["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]},
        "other": {"Ref": "Dlq"},
        "joined": {"Fn::Join": ["-", ["a", {"Ref": "Dlq"}]]},
    }


def test_python_tags_are_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("Resources: !!python/object/apply:os.getcwd []\n", encoding="utf-8")
    with pytest.raises(yaml.YAMLError):
        prov.load_template(path)

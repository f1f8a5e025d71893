"""Creates the stack's resources in moto or LocalStack from `infra/template.yaml`.

The template that `infra/` deploys is the only list of resources: this module
reads it, orders the resources by their references, resolves `Ref`,
`Fn::GetAtt` and `Fn::Sub` against what it created, and creates or updates
each non-Lambda resource through boto3, so running it twice changes nothing.
Lambda functions, layers and API Gateway resources are skipped (locally their
handlers run in the role processes), and so is a resource whose metadata names
the local role that replaces it (`Metadata: {"Attune": {"LocalRole": "relay"}}`:
the relay's once-a-minute schedule, whose work the `relay` role does
continuously). A resource type it does not know is an error, so the template
cannot grow something the local cloud silently lacks.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from functools import cache
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

import yaml

from chalicelib.aws.clients import client
from chalicelib.config import settings
from chalicelib.local import resources
from chalicelib.local.resources import Created, ProvisionError

log = logging.getLogger(__name__)

__all__ = ["Created", "ProvisionError", "lambda_handlers", "load_template", "provision"]

SKIPPED_PREFIXES = ("AWS::Serverless::", "AWS::Lambda::", "AWS::ApiGateway")
_FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")
_NO_VALUE = object()


def default_template_path() -> Path:
    """`infra/template.yaml` of this checkout (the package is installed editable)."""
    repo = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
    return repo if repo.exists() else Path.cwd() / "infra" / "template.yaml"


class _TemplateLoader(yaml.SafeLoader):
    """`yaml.safe_load` plus CloudFormation's short tags (`!Ref`, `!GetAtt`, `!Sub`, ...).

    Each tag becomes its long form (`{"Ref": ...}`, `{"Fn::GetAtt": [...]}`), so
    the resolver below sees one shape whichever way the template is written.
    """


def _short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _short_tag)


def load_template(path: Path | None = None) -> dict[str, Any]:
    """The parsed template, in long-form intrinsics whether it was written with short tags or not."""
    with (path or default_template_path()).open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_TemplateLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise ProvisionError(f"{path or default_template_path()} has no Resources section")
    return data


def is_skipped(resource_type: str) -> bool:
    """Whether a type exists only in a real deploy (its code runs in local role processes)."""
    return resource_type.startswith(SKIPPED_PREFIXES)


def local_role(body: Mapping[str, Any]) -> str | None:
    """The local role that does this resource's job instead (`Metadata.Attune.LocalRole`), if any.

    Provisioning such a resource would make the local cloud do the work twice
    (the local scheduler would invoke the relay function beside the relay role).
    """
    attune = (body.get("Metadata") or {}).get("Attune") or {}
    role = attune.get("LocalRole") if isinstance(attune, dict) else None
    return str(role) if role else None


def provisioned_locally(body: Mapping[str, Any]) -> bool:
    """Whether the local cloud creates this resource (neither deploy-only nor replaced by a role)."""
    return not is_skipped(body["Type"]) and local_role(body) is None


def local_resources(template: Mapping[str, Any]) -> dict[str, str]:
    """Logical id -> type of every resource the local cloud creates."""
    return {
        logical: res["Type"]
        for logical, res in template["Resources"].items()
        if provisioned_locally(res)
    }


class Resolver:
    """Evaluates the intrinsic functions of the template for a local stack."""

    def __init__(
        self,
        *,
        stack: str,
        region: str,
        account_id: Callable[[], str],
        parameters: Mapping[str, Any],
    ) -> None:
        self.stack = stack
        self.region = region
        self._account_id = account_id
        self.parameters = dict(parameters)
        self.created: dict[str, Created] = {}

    def pseudo(self, name: str) -> Any:
        """Values of `AWS::*` pseudo parameters as the local stack sees them."""
        values: dict[str, Callable[[], Any]] = {
            "AWS::StackName": lambda: self.stack,
            "AWS::Region": lambda: self.region,
            "AWS::AccountId": self._account_id,
            "AWS::Partition": lambda: "aws",
            "AWS::URLSuffix": lambda: "amazonaws.com",
            "AWS::StackId": lambda: (
                f"arn:aws:cloudformation:{self.region}:{self._account_id()}:stack/{self.stack}/local"
            ),
            "AWS::NoValue": lambda: _NO_VALUE,
        }
        if name not in values:
            raise ProvisionError(f"unsupported pseudo parameter {name}")
        return values[name]()

    def ref(self, target: str) -> Any:
        """`Ref`: a pseudo parameter, a template parameter or a created resource."""
        if target.startswith("AWS::"):
            return self.pseudo(target)
        if target in self.parameters:
            return self.parameters[target]
        if target in self.created:
            return self.created[target].ref
        raise ProvisionError(f"Ref to {target!r}, which is not provisioned locally")

    def get_att(self, target: str, attr: str) -> str:
        """`Fn::GetAtt` on a resource created (or synthesized) earlier in this run."""
        found = self.created.get(target)
        if found is None:
            raise ProvisionError(f"Fn::GetAtt on {target!r}, which is not provisioned locally")
        if attr not in found.attrs:
            raise ProvisionError(f"{target} has no attribute {attr!r} locally")
        return found.attrs[attr]

    def sub(self, arg: Any) -> str:
        """`Fn::Sub` in its string and [string, variables] forms, with `${!Literal}` escapes."""
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                target, attr = name.split(".", 1)
                return self.get_att(target, attr)
            return str(self.ref(name))

        return str(_SUB_VAR.sub(one, text)).replace("${!", "${")

    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic evaluated; `AWS::NoValue` entries are dropped."""
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                target, attr = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(target, attr)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::Join":
                return str(arg[0]).join(str(v) for v in self.resolve(arg[1]))
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key.startswith("Fn::") or key == "Condition":
                raise ProvisionError(f"intrinsic {key} is not supported by the local provisioner")
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _NO_VALUE}


def references(value: Any) -> set[str]:
    """Logical ids `value` refers to through Ref, GetAtt or Sub (pseudo parameters excluded)."""
    found: set[str] = set()
    if isinstance(value, list):
        for v in value:
            found |= references(v)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg.split(".", 1)[0] if isinstance(arg, str) else arg[0])
            elif key == "Fn::Sub":
                text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
                for name in _SUB_VAR.findall(text):
                    if name not in variables:
                        found.add(name.split(".", 1)[0])
                found |= references(variables)
            else:
                found |= references(arg)
    return {name for name in found if not name.startswith("AWS::")}


def _function_name(resolver: Resolver, logical: str, props: Mapping[str, Any]) -> str:
    name = props.get("FunctionName")
    return str(resolver.resolve(name)) if name is not None else f"{resolver.stack}-{logical}"


def _synthesize_function(resolver: Resolver, logical: str, props: Mapping[str, Any]) -> Created:
    """A skipped function still resolves, so schedules and policies can name its ARN."""
    name = _function_name(resolver, logical, props)
    arn = f"arn:aws:lambda:{resolver.region}:{resolver.pseudo('AWS::AccountId')}:function:{name}"
    return Created(ref=name, attrs={"Arn": arn})


def _order(template: Mapping[str, Any]) -> list[str]:
    """Resources in dependency order; skipped functions take part (their ARNs are synthesized)."""
    res = template["Resources"]
    wanted = {k for k, r in res.items() if provisioned_locally(r) or r["Type"] in _FUNCTION_TYPES}
    graph: dict[str, set[str]] = {}
    for logical in wanted:
        body = res[logical]
        props = body.get("Properties", {})
        if body["Type"] in _FUNCTION_TYPES:
            props = {"FunctionName": props.get("FunctionName")}
        depends = body.get("DependsOn", [])
        deps = references(props) | set([depends] if isinstance(depends, str) else depends)
        graph[logical] = {d for d in deps if d in wanted}
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise ProvisionError(f"circular references in the template: {exc.args[1]}") from exc


@cache
def _caller_account() -> str:
    return str(client("sts").get_caller_identity()["Account"])


def provision(
    template_path: Path | None = None,
    *,
    parameters: Mapping[str, Any] | None = None,
    state_dir: Path | None = None,
) -> dict[str, str]:
    """Create or update every local resource of the template; logical id -> physical id or ARN.

    Idempotent: resources found by name are updated in place (queues keep their
    messages, secrets keep their values), so every `attune dev` may call it. With
    `state_dir` (the local cloud's data dir), generated secrets are remembered
    there, so a restarted emulator gets the same JWT signing key back.
    """
    path = template_path or default_template_path()
    template = load_template(path)
    cfg = settings()
    params = {
        name: spec.get("Default", "") for name, spec in template.get("Parameters", {}).items()
    }
    params.update(parameters or {})
    resolver = Resolver(
        stack=cfg.stack_name, region=cfg.aws_region, account_id=_caller_account, parameters=params
    )
    ctx = resources.Context(
        stack=cfg.stack_name,
        region=cfg.aws_region,
        account_id=_caller_account,
        template_dir=path.parent,
        state_dir=state_dir,
    )
    unknown = sorted(
        f"{k} ({r['Type']})"
        for k, r in template["Resources"].items()
        if provisioned_locally(r) and r["Type"] not in resources.HANDLERS
    )
    if unknown:
        raise ProvisionError(
            "the local provisioner cannot create " + ", ".join(unknown)
            + "; teach chalicelib/local/resources.py these types"
        )
    physical: dict[str, str] = {}
    for logical in _order(template):
        body = template["Resources"][logical]
        kind = body["Type"]
        if kind in _FUNCTION_TYPES:
            resolver.created[logical] = _synthesize_function(resolver, logical, body.get("Properties", {}))
            continue
        props = resolver.resolve(body.get("Properties", {}))
        created = resources.HANDLERS[kind](ctx, logical, props)
        resolver.created[logical] = created
        physical[logical] = created.ref
    return physical


def lambda_handlers(template: Mapping[str, Any], stack: str | None = None) -> dict[str, str]:
    """Function name -> dotted local handler, derived from each function's CodeUri and Handler.

    The local scheduler invokes a schedule's Lambda target through this map, so
    the template stays the one place that says which code a function runs.
    """
    globals_fn = template.get("Globals", {}).get("Function", {})
    resolver = Resolver(
        stack=stack or settings().stack_name,
        region=settings().aws_region,
        account_id=_caller_account,
        parameters={},
    )
    found: dict[str, str] = {}
    for logical, body in template["Resources"].items():
        if body["Type"] not in _FUNCTION_TYPES:
            continue
        props = body.get("Properties", {})
        code_uri = props.get("CodeUri", globals_fn.get("CodeUri"))
        handler = props.get("Handler", globals_fn.get("Handler"))
        if not isinstance(code_uri, str) or not isinstance(handler, str):
            continue
        package = ".".join(part for part in Path(code_uri).parts if part not in (".", ""))
        dotted = f"{package}.{handler}" if package else handler
        found[_function_name(resolver, logical, props)] = dotted
    return found


def dump(physical: Mapping[str, str]) -> str:
    """Human-readable summary for `attune provision`."""
    return json.dumps(dict(physical), indent=2, sort_keys=True)

"""Rule files, pure: a pack's `rules/*.yaml`, and the file `attune rule create -f` reads.

One format for both, StackStorm's shape with Attune's criteria:

    name: on_error                       # the file name when absent; the rule's ref is <pack>.<name>
    description: Echo webhook errors
    enabled: true
    trigger:                             # inline: the rule gets a trigger of its own ...
      type: webhook
      parameters: {}
    # trigger: ops.watch                 # ... or the ref of an existing trigger (a pack sensor's is its ref)
    criteria: "{{ trigger.data.level == 'error' }}"
    action:
      ref: core.echo
      parameters: {message: "{{ trigger.data.msg }}"}

Everything checkable without the database is checked here (field types,
trigger parameters, template syntax), each refusal naming the file, so a pack
author sees every problem of a file at registration, not at the first event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import Field, JsonValue, ValidationError

from chalicelib.core.errors import AttuneError, ValidationFailed
from chalicelib.core.pack_archive import Files
from chalicelib.core.templating import check_criteria, check_tree
from chalicelib.core.timers import validate_trigger_parameters
from chalicelib.models.automation import Description, Ref, Template
from chalicelib.models.base import Contract
from chalicelib.models.packs import ACTION_NAME_PATTERN

RULES_DIR = "rules"
ActionRefText = Annotated[str, Field(min_length=3, max_length=200,
                                     pattern=r"^[a-z0-9][a-z0-9_-]*\.[A-Za-z0-9_.-]+$")]
RuleName = Annotated[str, Field(pattern=ACTION_NAME_PATTERN)]
INLINE_TYPES = ("webhook", "interval", "date", "cron")


class InlineTrigger(Contract):
    """A trigger the rule brings with it (`type` and `parameters`, as `POST /triggers` takes them)."""

    type: str
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    ref: Ref | None = None
    description: Description | None = None


class RuleAction(Contract):
    """StackStorm's `action: {ref, parameters}`."""

    ref: ActionRefText
    parameters: dict[str, Any] = Field(default_factory=dict)


class RuleFile(Contract):
    """A rule file's fields; `action` is a ref with top-level `parameters`, or `{ref, parameters}`."""

    name: RuleName | None = None
    pack: str | None = None
    description: Description | None = None
    enabled: bool = True
    notify_on_trigger: bool = False
    trigger: InlineTrigger | Ref | Annotated[int, Field(ge=1)]
    criteria: Template | None = None
    action: RuleAction | ActionRefText
    parameters: dict[str, Any] | None = None


@dataclass(frozen=True)
class RuleDef:
    """A rule read from a file: `trigger` is an inline definition, or the ref (or id) of an existing trigger."""

    name: str
    ref: str
    source: str
    trigger: InlineTrigger | str | int
    action_ref: str
    criteria: str | None
    parameters: dict[str, Any]
    enabled: bool
    notify_on_trigger: bool
    description: str | None

    def trigger_ref(self) -> str:
        """The ref of the trigger an inline definition creates: its own `ref`, else `<rule ref>.trigger`."""
        assert isinstance(self.trigger, InlineTrigger)
        return self.trigger.ref or f"{self.ref}.trigger"

    def api_body(self, trigger_id: int) -> dict[str, Any]:
        """The `POST /api/v1/rules` body of this rule once its trigger is `trigger_id`."""
        body: dict[str, Any] = {"ref": self.ref, "trigger_id": trigger_id, "action_ref": self.action_ref,
                                "parameters": self.parameters, "enabled": self.enabled,
                                "notify_on_trigger": self.notify_on_trigger}
        if self.criteria is not None:
            body["criteria"] = self.criteria
        if self.description is not None:
            body["description"] = self.description
        return body


def _problems(exc: ValidationError) -> str:
    out = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "constrained-")))
        out.append(f"{loc or '(document)'}: {err['msg']}")
    return "; ".join(out)


def parse_rule(path: str, data: Any, *, pack_ref: str | None) -> RuleDef:
    """One rule file's data as a RuleDef; `pack_ref` None for a rule outside a pack (`attune rule create -f`)."""
    if not isinstance(data, dict):
        raise ValidationFailed(f"{path}: expected a mapping of rule fields (trigger, action, ...), "
                               f"got {type(data).__name__}")
    if isinstance(data.get("criteria"), dict):
        raise ValidationFailed(f"{path}: criteria is a Jinja2 expression here, e.g. "
                               "\"{{ trigger.data.level == 'error' }}\"; StackStorm's operator mapping is not read")
    try:
        rule = RuleFile.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(f"{path}: {_problems(exc)}") from exc
    name = rule.name or PurePosixPath(path).stem
    if not re.fullmatch(ACTION_NAME_PATTERN, name):
        raise ValidationFailed(f"{path}: rule name {name!r} is invalid: letters, digits, '_' and '-'")
    if pack_ref is not None and rule.pack not in (None, pack_ref):
        raise ValidationFailed(f"{path}: pack {rule.pack!r} does not match the pack's ref {pack_ref!r}")
    owner = pack_ref or rule.pack
    if isinstance(rule.action, RuleAction):
        if rule.parameters is not None:
            raise ValidationFailed(f"{path}: give parameters under action (action: {{ref, parameters}}), not both")
        action_ref, parameters = rule.action.ref, dict(rule.action.parameters)
    else:
        action_ref, parameters = rule.action, dict(rule.parameters or {})
    trigger: InlineTrigger | str | int = rule.trigger
    try:
        if isinstance(rule.trigger, InlineTrigger):
            if rule.trigger.type not in INLINE_TYPES:
                raise ValidationFailed(
                    f"trigger.type {rule.trigger.type!r}: an inline trigger is one of {', '.join(INLINE_TYPES)} "
                    "(a sensor's trigger comes from sensors/*.yaml: name it by its ref, <pack>.<sensor>)")
            params = validate_trigger_parameters(rule.trigger.type, dict(rule.trigger.parameters))
            trigger = rule.trigger.model_copy(update={"parameters": params})
        if rule.criteria:
            check_criteria(rule.criteria)
        check_tree(parameters, "parameters")
    except AttuneError as exc:
        raise ValidationFailed(f"{path}: {exc.message}") from exc
    return RuleDef(
        name=name, ref=f"{owner}.{name}" if owner else name, source=path, trigger=trigger,
        action_ref=action_ref, criteria=rule.criteria, parameters=parameters, enabled=rule.enabled,
        notify_on_trigger=rule.notify_on_trigger, description=rule.description,
    )


def is_rule_file(path: str) -> bool:
    """Whether a pack path is one of its rule files (`rules/<name>.yaml`)."""
    p = PurePosixPath(path)
    return str(p.parent) == RULES_DIR and p.suffix in (".yaml", ".yml")


def parse_rules(pack_ref: str, files: Files) -> list[RuleDef]:
    """Every `rules/*.yaml` of the pack; the first bad file refuses them all (a 400 naming it)."""
    from chalicelib.core.packs import load_yaml  # here: core.packs imports this module

    found: dict[str, RuleDef] = {}
    for path in sorted(p for p in files if is_rule_file(p)):
        rule = parse_rule(path, load_yaml(path, files[path]), pack_ref=pack_ref)
        if rule.name in found:
            raise ValidationFailed(f"{path}: rule {rule.name!r} is already defined by {found[rule.name].source}")
        found[rule.name] = rule
    return list(found.values())

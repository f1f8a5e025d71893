"""Rule files (a pack's rules/*.yaml, and `attune rule create -f`): parsed and checked without a database."""

from __future__ import annotations

import pytest

from chalicelib.core.errors import ValidationFailed
from chalicelib.core.pack_rules import InlineTrigger, parse_rule, parse_rules
from chalicelib.core.packs import file_index

INLINE = b"""\
description: Echo errors
trigger:
  type: webhook
criteria: "{{ trigger.data.severity == 'high' }}"
action:
  ref: core.echo
  parameters:
    message: "{{ trigger.data.msg }}"
"""


def test_a_rule_file_with_an_inline_trigger() -> None:
    # GIVEN a pack's rule file WHEN parsed THEN it is the pack's rule, named by its file, with its trigger inline
    (rule,) = parse_rules("ops", {"rules/on_error.yaml": INLINE, "rules/README.md": b"not a rule"})
    assert (rule.name, rule.ref, rule.action_ref, rule.source) == ("on_error", "ops.on_error", "core.echo",
                                                                   "rules/on_error.yaml")
    assert isinstance(rule.trigger, InlineTrigger) and rule.trigger.type == "webhook"
    assert rule.trigger_ref() == "ops.on_error.trigger"
    assert rule.parameters == {"message": "{{ trigger.data.msg }}"} and rule.enabled is True
    assert rule.api_body(7) == {"ref": "ops.on_error", "trigger_id": 7, "action_ref": "core.echo",
                                "parameters": {"message": "{{ trigger.data.msg }}"}, "enabled": True,
                                "notify_on_trigger": False, "criteria": "{{ trigger.data.severity == 'high' }}",
                                "description": "Echo errors"}


def test_a_rule_naming_its_trigger_by_ref_with_flat_parameters() -> None:
    rule = parse_rule("r.yaml", {"name": "watch", "trigger": "ops.watcher", "action": "core.echo",
                                 "parameters": {"message": "x"}}, pack_ref=None)
    assert (rule.ref, rule.trigger, rule.parameters) == ("watch", "ops.watcher", {"message": "x"})


def test_timer_parameters_are_normalised_at_parse() -> None:
    rule = parse_rule("rules/t.yaml", {"trigger": {"type": "interval", "parameters": {"seconds": 5}},
                                       "action": "core.noop"}, pack_ref="p")
    assert isinstance(rule.trigger, InlineTrigger) and rule.trigger.parameters["seconds"] == 5


@pytest.mark.parametrize(("data", "problem"), [
    ({"trigger": {"type": "interval"}, "action": "core.echo"}, "interval trigger needs parameters.seconds"),
    ({"trigger": {"type": "sensor"}, "action": "core.echo"}, "a sensor's trigger comes from sensors"),
    ({"trigger": "t", "action": "core.echo", "criteria": {"trigger.body.x": {"type": "equals"}}},
     "criteria is a Jinja2 expression"),
    ({"trigger": "t", "action": "core.echo", "criteria": "{{ x == }}"}, "criteria: template syntax error"),
    ({"trigger": "t", "action": "core.echo", "parameters": {"m": "{{ oops"}}, "parameters"),
    ({"trigger": "t"}, "action: Field required"),
    ({"action": "core.echo"}, "trigger: Field required"),
    ({"trigger": "t", "action": "core.echo", "colour": "red"}, "colour: Extra inputs are not permitted"),
    ({"trigger": "t", "action": {"ref": "core.echo"}, "parameters": {}}, "not both"),
    ({"trigger": "t", "action": "core.echo", "pack": "other"}, "does not match the pack's ref 'p'"),
    (["not", "a", "mapping"], "expected a mapping"),
])
def test_bad_rule_files_are_400s_naming_the_file(data: object, problem: str) -> None:
    with pytest.raises(ValidationFailed, match=problem) as err:
        parse_rule("rules/bad.yaml", data, pack_ref="p")
    assert err.value.message.startswith("rules/bad.yaml: ")


def test_a_rule_defined_twice_in_a_pack_is_refused() -> None:
    with pytest.raises(ValidationFailed, match=r"rules/b\.yaml: rule 'same' is already defined by rules/a\.yaml"):
        parse_rules("p", {"rules/a.yaml": b"name: same\ntrigger: t\naction: core.echo\n",
                          "rules/b.yaml": b"name: same\ntrigger: t\naction: core.echo\n"})


def test_invalid_yaml_names_the_file_and_line() -> None:
    with pytest.raises(ValidationFailed, match=r"rules/x.yaml: invalid YAML: .*\(line \d+, column \d+\)"):
        parse_rules("p", {"rules/x.yaml": b"trigger: t\naction: [\n"})


def test_the_file_index_records_which_rules_a_file_made() -> None:
    # GIVEN the index entry of a rule file WHEN the pack's index is built THEN the file's entry carries it
    index = file_index({"rules/a.yaml": b"x", "pack.yaml": b"y"}, [], {"rules/a.yaml": {"rule": "p.a"}})
    assert [e.get("rule") for e in index] == [None, "p.a"]

"""`attune trigger ...`, `attune rule ...` and `attune key ...`: what fires, what it runs, what it reads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chalicelib.cli import output
from chalicelib.cli.packs import quoted
from chalicelib.cli.session import CliError, Session
from chalicelib.cli.state import json_option, state
from chalicelib.cli.values import parse_pairs, parse_value

if TYPE_CHECKING:  # imported when a rule file is read: pydantic models cost a CLI start ~0.4 s
    from chalicelib.core.pack_rules import RuleDef

TRIGGER_TYPES = ("webhook", "interval", "date", "cron")
TRIGGER_COLUMNS = [("id", "id"), ("ref", "ref"), ("type", "type"), ("parameters", "parameters"),
                   ("enabled", "enabled"), ("webhook url", "webhook_url")]
RULE_COLUMNS = [("id", "id"), ("ref", "ref"), ("trigger", "trigger_id"), ("action", "action_ref"),
                ("enabled", "enabled"), ("criteria", "criteria")]
KEY_COLUMNS = [("key", "key"), ("value", "value"), ("encrypted", "encrypted"), ("expires at", "expires_at")]
PAGE = 1000


def _show(body: dict[str, Any], fields: list[tuple[str, str]]) -> None:
    if state().json:
        output.print_json(body)
    else:
        output.record(body, fields)


@click.group("trigger")
def trigger() -> None:
    """Triggers: webhooks and timers."""


@trigger.command("create")
@click.argument("trigger_type", metavar="TYPE", type=click.Choice(TRIGGER_TYPES))
@click.argument("parameters", nargs=-1)
@click.option("--ref", help="A name for it (unique in your tenant), e.g. for rule files to use.")
@click.option("--description")
@json_option
def trigger_create(trigger_type: str, parameters: tuple[str, ...], ref: str | None,
                   description: str | None) -> None:
    """Create a trigger of TYPE with key=value PARAMETERS.

    Examples: attune trigger create webhook; attune trigger create interval seconds=5;
    attune trigger create cron expression='*/10 * * * * *' timezone=UTC
    """
    body: dict[str, Any] = {"type": trigger_type, "parameters": parse_pairs(parameters)}
    if ref:
        body["ref"] = ref
    if description:
        body["description"] = description
    _show(state().session().call("POST", "/api/v1/triggers", body), TRIGGER_COLUMNS)


@trigger.command("list")
@click.option("--type", "trigger_type", type=click.Choice((*TRIGGER_TYPES, "sensor")))
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
def trigger_list(trigger_type: str | None, limit: int) -> None:
    """Your triggers, newest first."""
    page = state().session().call("GET", "/api/v1/triggers", query={"type": trigger_type, "limit": limit})
    if state().json:
        output.print_json(page)
    else:
        output.table(page["items"], TRIGGER_COLUMNS, total=page["total"])


def read_rule_file(path: Path) -> RuleDef:
    """A rule file (the format of a pack's rules/*.yaml), checked as the server checks a pack's."""
    from chalicelib.core.errors import AttuneError
    from chalicelib.core.pack_rules import parse_rule
    from chalicelib.core.packs import load_yaml

    try:
        return parse_rule(str(path), load_yaml(str(path), path.read_bytes()), pack_ref=None)
    except AttuneError as exc:
        raise CliError(exc.message) from exc


def _trigger_by_ref(session: Session, ref: str) -> dict[str, Any]:
    offset = 0
    while True:
        page = session.call("GET", "/api/v1/triggers", query={"limit": PAGE, "offset": offset})
        for row in page["items"]:
            if row.get("ref") == ref:
                return dict(row)
        offset += PAGE
        if offset >= page["total"]:
            raise CliError(f"trigger {ref!r} not found: no trigger of yours has that ref "
                           "(`attune trigger list` shows them)")


def _rule_trigger(session: Session, rule: RuleDef) -> dict[str, Any]:
    from chalicelib.core.pack_rules import InlineTrigger

    spec = rule.trigger
    if isinstance(spec, InlineTrigger):
        body = spec.model_dump(exclude_none=True)
        created: dict[str, Any] = session.call("POST", "/api/v1/triggers", body)
        return created
    if isinstance(spec, int):
        found: dict[str, Any] = session.call("GET", f"/api/v1/triggers/{spec}")
        return found
    return _trigger_by_ref(session, spec)


@click.group("rule")
def rule() -> None:
    """Rules: when a trigger fires (and its criteria hold), run an action."""


@rule.command("create")
@click.option("-f", "--file", "path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A rule file, in the format of a pack's rules/*.yaml.")
@json_option
def rule_create(path: Path) -> None:
    """Create the rule a YAML file defines (its trigger inline, or by ref or id)."""
    definition = read_rule_file(path)
    session = state().session()
    found = _rule_trigger(session, definition)
    body = session.call("POST", "/api/v1/rules", definition.api_body(int(found["id"])))
    if state().json:
        output.print_json({**body, "trigger": found})
        return
    output.record(body, RULE_COLUMNS)
    if found.get("webhook_url"):
        output.text(f"webhook: POST {session.url}{found['webhook_url']}")


@rule.command("list")
@click.option("--enabled/--disabled", default=None, help="Only enabled (or disabled) rules.")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
def rule_list(enabled: bool | None, limit: int) -> None:
    """Your rules, newest first."""
    page = state().session().call("GET", "/api/v1/rules", query={"enabled": enabled, "limit": limit})
    if state().json:
        output.print_json(page)
    else:
        output.table(page["items"], RULE_COLUMNS, total=page["total"])


def _set_enabled(ref: str, enabled: bool) -> None:
    body = state().session().call("PATCH", f"/api/v1/rules/{quoted(ref)}", {"enabled": enabled})
    if state().json:
        output.print_json(body)
    else:
        output.text(f"rule {body['ref']} (id {body['id']}): {'enabled' if body['enabled'] else 'disabled'}")


@rule.command("enable")
@click.argument("ref")
@json_option
def rule_enable(ref: str) -> None:
    """Enable rule REF (ref or id)."""
    _set_enabled(ref, True)


@rule.command("disable")
@click.argument("ref")
@json_option
def rule_disable(ref: str) -> None:
    """Disable rule REF (ref or id): its trigger's events no longer run it."""
    _set_enabled(ref, False)


@click.group("key")
def key() -> None:
    """The datastore: values (and encrypted secrets) your actions and rules read."""


@key.command("set")
@click.argument("name")
@click.argument("value")
@click.option("--encrypt", is_flag=True, help="Store it encrypted (a secret).")
@click.option("--ttl", type=int, help="Expire after this many seconds.")
@click.option("--string", "as_string", is_flag=True, help="Store VALUE as text even when it parses as JSON.")
@json_option
def key_set(name: str, value: str, encrypt: bool, ttl: int | None, as_string: bool) -> None:
    """Set key NAME to VALUE (JSON when it parses, else text)."""
    body: dict[str, Any] = {"key": name, "value": value if as_string else parse_value(value), "encrypted": encrypt}
    if ttl is not None:
        body["ttl"] = ttl
    stored = state().session().call("POST", "/api/v1/datastore", body)
    if state().json:
        output.print_json(stored)
    else:
        output.text(f"{stored['key']} set" + (" (encrypted)" if stored["encrypted"] else ""))


@key.command("get")
@click.argument("name")
@json_option
def key_get(name: str) -> None:
    """Key NAME's value (decrypted when it is a secret you may read)."""
    _show(state().session().call("GET", f"/api/v1/datastore/{quoted(name)}"), KEY_COLUMNS)


@key.command("delete")
@click.argument("name")
@json_option
def key_delete(name: str) -> None:
    """Delete key NAME."""
    body = state().session().call("DELETE", f"/api/v1/datastore/{quoted(name)}")
    if state().json:
        output.print_json(body)
    else:
        output.text(f"{name} deleted")


@key.command("list")
@click.option("--prefix", help="Only keys that start with this.")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
def key_list(prefix: str | None, limit: int) -> None:
    """Your keys (secrets masked)."""
    page = state().session().call("GET", "/api/v1/datastore", query={"prefix": prefix, "limit": limit})
    if state().json:
        output.print_json(page)
    else:
        output.table(page["items"], KEY_COLUMNS, total=page["total"])

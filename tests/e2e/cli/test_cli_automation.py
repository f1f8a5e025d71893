"""`attune trigger create`, `attune rule create -f|list|enable|disable` and `attune key set|get|delete`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.cli.runner import PACKS, logged_in
from tests.e2e.client import Cloud
from tests.e2e.flow import fire, poll

RULE_FILE = """\
name: echo_errors
description: Echo the message of error events.
trigger:
  type: webhook
criteria: "{{ trigger.data.level == 'error' }}"
action:
  ref: core.echo
  parameters:
    message: "{{ trigger.data.msg }}"
"""


def test_trigger_create_and_list(cloud: Cloud, tmp_path: Path) -> None:
    cli = logged_in(cloud, tmp_path, "cli-trigger")
    # WHEN a webhook and a seconds-precision cron are created
    hook = cli.json("trigger", "create", "webhook", "--ref", "deploys")
    cron = cli.json("trigger", "create", "cron", "expression=*/10 * * * * *", "timezone=UTC")
    # THEN the webhook has its URL and the cron its parameters (a value that is not JSON stays text)
    assert (hook["ref"], hook["webhook_url"]) == ("deploys", f"/api/v1/webhooks/{hook['id']}")
    assert cron["parameters"]["expression"] == "*/10 * * * * *" and cron["parameters"]["timezone"] == "UTC"
    table = cli.ok("trigger", "list").stdout
    assert "deploys" in table and "cron" in table
    assert [t["id"] for t in cli.json("trigger", "list", "--type", "webhook")["items"]] == [hook["id"]]


def test_a_bad_timer_is_the_apis_400(cloud: Cloud, tmp_path: Path) -> None:
    done = logged_in(cloud, tmp_path, "cli-trigger400").fails("trigger", "create", "cron", "expression=not a cron")
    assert "400" in done.stderr and "expression" in done.stderr, done.stderr


def test_rule_create_from_a_file_with_an_inline_webhook(cloud: Cloud, tmp_path: Path) -> None:
    # GIVEN a rule file in the pack format
    cli = logged_in(cloud, tmp_path, "cli-rule")
    rule_file = tmp_path / "rule.yaml"
    rule_file.write_text(RULE_FILE)
    # WHEN created THEN the rule and its webhook exist, and the command says where to post
    done = cli.ok("rule", "create", "-f", str(rule_file))
    assert "echo_errors" in done.stdout and "webhook: POST " in done.stdout, done.stdout
    (rule,) = cli.json("rule", "list")["items"]
    assert (rule["ref"], rule["action_ref"], rule["enabled"]) == ("echo_errors", "core.echo", True)
    # AND an error event runs core.echo with its message
    fire(cloud, rule["trigger_id"], {"level": "error", "msg": "disk full"})

    def echoed() -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = cli.json("execution", "list", "--action", "core.echo")["items"]
        return [r for r in runs if r["parameters"] == {"message": "disk full"}]

    (run,) = poll(echoed, "the rule's execution", cloud)
    assert run["enforcement_id"] is not None
    # AND a second rule may name the same trigger by its ref
    trigger = cli.json("trigger", "list")["items"][0]
    by_ref = tmp_path / "also.yaml"
    by_ref.write_text(f"trigger: {trigger['ref']}\naction: core.noop\n")
    second = cli.json("rule", "create", "-f", str(by_ref))
    assert (second["ref"], second["trigger_id"]) == ("also", trigger["id"])


def test_rule_create_refuses_a_file_naming_no_trigger_and_an_unknown_ref(cloud: Cloud, tmp_path: Path) -> None:
    cli = logged_in(cloud, tmp_path, "cli-rulebad")
    bad = tmp_path / "bad.yaml"
    bad.write_text("action: core.echo\n")
    assert f"{bad}: trigger: Field required" in cli.fails("rule", "create", "-f", str(bad)).stderr
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("trigger: nowhere\naction: core.echo\n")
    assert "trigger 'nowhere' not found" in cli.fails("rule", "create", "-f", str(unknown)).stderr
    assert cli.json("rule", "list")["items"] == []


def test_enable_and_disable_the_timer_packs_rule(cloud: Cloud, tmp_path: Path) -> None:
    # GIVEN the catalogue's timer_pack, whose every-5-seconds rule ships disabled
    cli = logged_in(cloud, tmp_path, "cli-timer")
    cli.ok("pack", "register", str(PACKS / "timer_pack"))
    (rule,) = cli.json("rule", "list", "--disabled")["items"]
    assert rule["ref"] == "timer_pack.every_5s"
    # WHEN it is enabled THEN the timer fires and runs timer_pack.tick with the fire's times
    assert "enabled" in cli.ok("rule", "enable", "timer_pack.every_5s").stdout

    def ticks() -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = cli.json("execution", "list", "--action", "timer_pack.tick",
                                              "--status", "succeeded")["items"]
        return runs

    first = poll(ticks, "a tick of the enabled timer", cloud)[0]
    assert set(cli.json("execution", "get", str(first["id"]))["result"]["output"]) == {"scheduled_at", "fired_at"}
    # WHEN it is disabled THEN the rule says so
    disabled = cli.json("rule", "disable", "timer_pack.every_5s")
    assert disabled["enabled"] is False
    assert cli.json("rule", "list", "--enabled")["items"] == []


def test_enable_of_an_unknown_rule_is_a_404(cloud: Cloud, tmp_path: Path) -> None:
    done = logged_in(cloud, tmp_path, "cli-rule404").fails("rule", "enable", "no.such.rule")
    assert "404: rule no.such.rule not found" in done.stderr, done.stderr


def test_key_set_get_delete(cloud: Cloud, tmp_path: Path) -> None:
    cli = logged_in(cloud, tmp_path, "cli-key")
    # WHEN a secret and a JSON value are set
    assert "(encrypted)" in cli.ok("key", "set", "api_token", "t0k3n", "--encrypt").stdout
    cli.ok("key", "set", "config", '{"api_url": "https://example.test"}')
    # THEN get decrypts the secret and returns the JSON as JSON
    token = cli.json("key", "get", "api_token")
    assert (token["value"], token["encrypted"]) == ("t0k3n", True)
    assert cli.json("key", "get", "config")["value"] == {"api_url": "https://example.test"}
    assert "t0k3n" in cli.ok("key", "get", "api_token").stdout
    # WHEN deleted THEN it is gone: get is the API's 404
    assert "api_token deleted" in cli.ok("key", "delete", "api_token").stdout
    gone = cli.fails("key", "get", "api_token")
    assert "404: datastore key 'api_token' not found" in gone.stderr, gone.stderr
    assert "404" in cli.fails("key", "delete", "api_token").stderr

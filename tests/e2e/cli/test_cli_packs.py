"""`attune pack register DIR|list|reload` and `attune action list|get`: packs as directories, StackStorm-style."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.e2e.cli.runner import PACKS, logged_in
from tests.e2e.client import Cloud
from tests.e2e.flow import fire, poll


def test_register_a_pack_directory_with_a_rule_and_its_webhook(cloud: Cloud, tmp_path: Path) -> None:
    # GIVEN the catalogue's webhook_pack (an action, a rule with an inline webhook and the seed's criteria)
    cli = logged_in(cloud, tmp_path, "cli-pack")
    assert cli.user is not None
    # WHEN it is registered from its directory
    done = cli.ok("pack", "register", str(PACKS / "webhook_pack"))
    assert "registered pack webhook_pack 1.0.0" in done.stdout, done.stdout
    # THEN the pack, its action, its rule and the rule's trigger exist
    (pack,) = [p for p in cli.json("pack", "list")["items"] if p["ref"] == "webhook_pack"]
    assert pack["actions"] == ["webhook_pack.alert"]
    (rule,) = cli.json("rule", "list")["items"]
    assert (rule["ref"], rule["action_ref"], rule["enabled"]) == ("webhook_pack.on_high", "webhook_pack.alert", True)
    (trigger,) = cli.json("trigger", "list")["items"]
    assert (trigger["ref"], trigger["id"]) == ("webhook_pack.events", rule["trigger_id"])
    # AND the rule works: a high-severity event runs the alert, a low one does not
    fire(cloud, trigger["id"], {"severity": "low", "message": "ignore me"})
    fire(cloud, trigger["id"], {"severity": "high", "message": "disk full"})

    def alerts() -> list[dict[str, object]]:
        runs = cli.json("execution", "list", "--action", "webhook_pack.alert")["items"]
        return [r for r in runs if r["status"] == "succeeded"]

    (run,) = poll(alerts, "the alert execution", cloud)
    shown = cli.json("execution", "get", str(run["id"]))
    assert shown["result"]["output"] == {"alert": "[high] disk full"}, shown
    assert len(cli.json("execution", "list", "--action", "webhook_pack.alert")["items"]) == 1


def test_register_refuses_a_link_out_of_the_pack_before_sending(cloud: Cloud, tmp_path: Path) -> None:
    cli = logged_in(cloud, tmp_path, "cli-link")
    pack = tmp_path / "leaky"
    shutil.copytree(PACKS / "test_pack", pack)
    (pack / "actions" / "key.pem").symlink_to("/etc/hostname")
    done = cli.fails("pack", "register", str(pack))
    assert "actions/key.pem: a symbolic link to the absolute path '/etc/hostname'" in done.stderr, done.stderr
    assert "test_pack" not in [p["ref"] for p in cli.json("pack", "list")["items"]]


def test_a_bad_rule_file_is_the_servers_400_naming_it(cloud: Cloud, tmp_path: Path) -> None:
    # GIVEN a pack whose rule names a trigger that does not exist
    cli = logged_in(cloud, tmp_path, "cli-badrule")
    pack = tmp_path / "bad_pack"
    shutil.copytree(PACKS / "test_pack", pack)
    (pack / "rules").mkdir()
    (pack / "rules" / "orphan.yaml").write_text("trigger: no_such_trigger\naction: test_pack.echo\n")
    # WHEN registered THEN the API's 400 names the file and the problem, and nothing was registered
    done = cli.fails("pack", "register", str(pack))
    assert "400: rules/orphan.yaml: trigger 'no_such_trigger' not found" in done.stderr, done.stderr
    assert "test_pack" not in [p["ref"] for p in cli.json("pack", "list")["items"]]


def test_reload_from_a_directory_updates_adds_and_removes_rules(cloud: Cloud, tmp_path: Path) -> None:
    # GIVEN webhook_pack registered from a copy
    cli = logged_in(cloud, tmp_path, "cli-reload")
    pack = tmp_path / "webhook_pack"
    shutil.copytree(PACKS / "webhook_pack", pack)
    cli.ok("pack", "register", str(pack))
    trigger_id = cli.json("trigger", "list")["items"][0]["id"]
    # WHEN its rule's criteria change, a second rule on the same webhook (by ref) is added, and it is reloaded
    rule = pack / "rules" / "on_high.yaml"
    rule.write_text(rule.read_text().replace("== 'high'", "in ['high', 'critical']"))
    (pack / "rules" / "log_all.yaml").write_text(
        "trigger: webhook_pack.events\naction:\n  ref: core.echo\n"
        "  parameters: {message: '{{ trigger.data.message }}'}\n")
    reloaded = cli.json("pack", "reload", "webhook_pack", "--dir", str(pack))
    # THEN a new version, the rule updated in place (same trigger), the new one added
    assert reloaded["version"] == "1.0.1"
    assert reloaded["changes"]["rules_added"] == ["webhook_pack.log_all"]
    assert reloaded["changes"]["rules_updated"] == ["webhook_pack.on_high"]
    rules = {r["ref"]: r for r in cli.json("rule", "list")["items"]}
    assert rules["webhook_pack.on_high"]["criteria"] == "{{ trigger.data.severity in ['high', 'critical'] }}"
    assert {r["trigger_id"] for r in rules.values()} == {trigger_id}
    # WHEN the first rule's file is removed and the pack reloaded again
    rule.unlink()
    gone = cli.json("pack", "reload", "webhook_pack", "--dir", str(pack))
    # THEN its rule is gone, while the trigger it defined stays for the rule that names it
    assert gone["version"] == "1.0.2"
    assert gone["changes"]["rules_removed"] == ["webhook_pack.on_high"]
    (left,) = cli.json("rule", "list")["items"]
    assert (left["ref"], left["trigger_id"]) == ("webhook_pack.log_all", trigger_id)
    # WHEN the pack is deleted THEN the rules its files made go with it
    assert cli.user is not None
    assert cli.user.delete("/api/v1/packs/webhook_pack").status_code == 200
    assert cli.json("rule", "list")["items"] == []


def test_reload_of_an_unknown_pack_is_a_404(cloud: Cloud, tmp_path: Path) -> None:
    done = logged_in(cloud, tmp_path, "cli-reload404").fails("pack", "reload", "no_such_pack")
    assert "404: pack 'no_such_pack' not found" in done.stderr, done.stderr


def test_action_list_and_get(cloud: Cloud, tmp_path: Path) -> None:
    # GIVEN the catalogue's failing_pack registered
    cli = logged_in(cloud, tmp_path, "cli-actions")
    cli.ok("pack", "register", str(PACKS / "failing_pack"))
    # WHEN its actions are listed THEN both are there, as a table and as JSON
    table = cli.ok("action", "list", "--pack", "failing_pack").stdout
    assert "failing_pack.exit_code" in table and "failing_pack.raise_error" in table
    refs = sorted(a["ref"] for a in cli.json("action", "list", "--pack", "failing_pack")["items"])
    assert refs == ["failing_pack.exit_code", "failing_pack.raise_error"]
    # AND one action shows its parameters
    shown = cli.ok("action", "get", "failing_pack.exit_code").stdout
    assert "shell" in shown and "code" in shown and "integer" in shown
    assert cli.json("action", "get", "failing_pack.exit_code")["parameters"]["code"]["default"] == 1


def test_action_get_of_an_unknown_ref_is_a_404(cloud: Cloud, tmp_path: Path) -> None:
    done = logged_in(cloud, tmp_path, "cli-action404").fails("action", "get", "nope.missing")
    assert "404: action 'nope.missing' not found" in done.stderr, done.stderr

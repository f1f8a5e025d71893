"""`attune login`: tokens kept 0600 in the config dir, refreshed on a 401, clear errors otherwise."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.e2e.cli.runner import Cli, logged_in
from tests.e2e.client import PASSWORD, Cloud


def test_login_saves_tokens_only_the_user_can_read(cloud: Cloud, tmp_path: Path) -> None:
    # GIVEN a registered user WHEN logging in with flags (as a script does)
    cli = logged_in(cloud, tmp_path, "cli-login")
    # THEN the tokens are in the config dir, mode 0600, under the API URL
    saved = cli.config_dir / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    entry = json.loads(saved.read_text())[cloud.url]
    assert cli.user is not None and entry["username"] == cli.user.username
    assert entry["access_token"] and entry["refresh_token"]
    # AND a command runs as that user
    listed = cli.json("pack", "list")
    assert "core" in [p["ref"] for p in listed["items"]]


def test_login_prompts_when_flags_are_missing(cloud: Cloud, tmp_path: Path) -> None:
    user = cloud.register("cli-prompt")
    cli = Cli(cloud, tmp_path / "cfg")
    done = cli.ok("login", stdin=f"{user.username}\n{PASSWORD}\n")
    assert f"as {user.username}" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr  # the password prompt does not echo


def test_a_wrong_password_prints_the_apis_message(cloud: Cloud, tmp_path: Path) -> None:
    user = cloud.register("cli-badpw")
    cli = Cli(cloud, tmp_path / "cfg")
    done = cli.fails("login", "-u", user.username, "-p", "not-the-password")
    assert "401" in done.stderr and "Error:" in done.stderr, done.stderr
    assert not (cli.config_dir / "credentials.json").exists()


def test_an_expired_access_token_is_refreshed_automatically(cloud: Cloud, tmp_path: Path) -> None:
    # GIVEN a session whose access token no longer works (as after it expires)
    cli = logged_in(cloud, tmp_path, "cli-refresh")
    saved = cli.config_dir / "credentials.json"
    data = json.loads(saved.read_text())
    old_refresh = data[cloud.url]["refresh_token"]
    data[cloud.url]["access_token"] = "expired.token.value"
    saved.write_text(json.dumps(data))
    # WHEN a command runs THEN it succeeds, having traded the refresh token for a new pair
    assert cli.json("action", "get", "core.echo")["ref"] == "core.echo"
    entry = json.loads(saved.read_text())[cloud.url]
    assert entry["access_token"] != "expired.token.value" and entry["refresh_token"] != old_refresh
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_without_login_commands_say_to_log_in(cloud: Cloud, tmp_path: Path) -> None:
    done = Cli(cloud, tmp_path / "empty").fails("execution", "list")
    assert "not logged in" in done.stderr and "attune login" in done.stderr


def test_an_unreachable_api_is_a_clear_error(cloud: Cloud, tmp_path: Path) -> None:
    done = Cli(cloud, tmp_path / "cfg").fails("login", "-u", "x", "-p", "y", ATTUNE_URL="http://127.0.0.1:9")
    assert "cannot reach the Attune API at http://127.0.0.1:9" in done.stderr

"""The README's "From the terminal" block, run as written against the cloud under test.

It is read from README.md when the test runs, so the walkthrough and this test
cannot drift. Only the API address and the username are substituted (the
cloud listens on a test port; each run is its own tenant), the tokens go to a
temporary config dir, and `curl` fails on any 4xx/5xx, as in the README's
first walkthrough test.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

from tests.e2e.cli.runner import ROOT, Cli
from tests.e2e.client import Cloud
from tests.e2e.flow import items, poll, wait_final
from tests.e2e.readme import sh_block, strict, with_line

SECTION = "## From the terminal"
README_USER = "dev"
README_PASSWORD = "change-me-please"
SHELL_TIMEOUT_S = 180


def terminal_block() -> str:
    """The first ```sh block after the "From the terminal" heading."""
    return sh_block(SECTION)


def runnable(block: str, api: str, username: str) -> str:
    """The block aimed at `api` as `username`, stopping at the first failing command or 4xx/5xx."""
    script = with_line(block, "export ATTUNE_URL=", f"export ATTUNE_URL={api}")
    assert script.count(f'"username":"{README_USER}"') == 1, "the block registers 'dev'; update this test"
    assert script.count(f"--username {README_USER} ") == 1, "the block logs in as 'dev'; update this test"
    script = script.replace(f'"username":"{README_USER}"', f'"username":"{username}"')
    return strict(script.replace(f"--username {README_USER} ", f"--username {username} "))


def test_readme_terminal_walkthrough_runs_as_written(cloud: Cloud, tmp_path: Path) -> None:
    # GIVEN the README's block, aimed at this cloud as a user of its own, tokens in a temporary dir
    username = f"readme-cli-{uuid.uuid4().hex[:8]}"
    env = Cli(cloud, tmp_path / "attune-config").env()
    # WHEN it runs in bash from the repository root, as a user would paste it
    done = subprocess.run(["bash", "-c", runnable(terminal_block(), cloud.url, username)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=SHELL_TIMEOUT_S, check=False)
    # THEN every command succeeded, and the commands printed what the comments say
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "registered pack webhook_pack 1.0.0" in done.stdout, done.stdout
    assert "webhook_pack.on_high" in done.stdout and '"event_id"' in done.stdout
    assert '"message": "hello from the terminal"' in done.stdout
    assert "t0k3n" in done.stdout
    assert (tmp_path / "attune-config" / "credentials.json").exists()
    # AND over the API: the webhook's alert ran and succeeded, and the secret is stored encrypted
    user = cloud.login(username, README_PASSWORD)

    def alert() -> list[dict[str, Any]]:
        runs = items(user, "/api/v1/executions", action_ref="webhook_pack.alert")
        return [r for r in runs if r["enforcement_id"] is not None]

    (run,) = poll(alert, "the rule's webhook_pack.alert execution", cloud)
    final = wait_final(user, int(run["id"]))
    assert final["status"] == "succeeded" and final["result"]["output"] == {"alert": "[high] disk full"}, final
    stored = user.get("/api/v1/datastore/api_token").json()
    assert (stored["value"], stored["encrypted"]) == ("t0k3n", True)

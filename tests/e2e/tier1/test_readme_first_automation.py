"""The README's "A first automation" block, run verbatim against the cloud under test.

A new user's first minutes are that block pasted into a shell. It is read
from README.md when the test runs, so the docs and this test cannot drift:
an edit that breaks the block fails here. Only the API address and the
username are substituted (the cloud listens on a test port; each run is its
own tenant), and curl is made to fail on any 4xx/5xx answer, which `curl -s`
alone would print and carry on past.
"""

from __future__ import annotations

import subprocess
import uuid

from tests.e2e.client import Cloud
from tests.e2e.flow import items, poll, wait_final
from tests.e2e.readme import sh_block, strict, with_line

SECTION = "## A first automation"
README_USER = '"username":"ops"'
README_PASSWORD = "change-me-please"
SHELL_TIMEOUT_S = 120


def readme_block() -> str:
    """The first ```sh block after the "A first automation" heading."""
    return sh_block(SECTION)


def runnable(block: str, api: str, username: str) -> str:
    """The block aimed at `api` as `username`, stopping at the first failing command or 4xx/5xx."""
    script = with_line(block, "API=", f"API={api}")
    assert script.count(README_USER) == 2, "the block registers and logs in as 'ops'; update this test's substitution"
    return strict(script.replace(README_USER, f'"username":"{username}"'))


def test_readme_first_automation_runs_verbatim(cloud: Cloud) -> None:
    # GIVEN the README's block, aimed at this cloud as a user of its own
    username = f"readme-{uuid.uuid4().hex[:10]}"
    script = runnable(readme_block(), cloud.url, username)
    # WHEN it runs in bash, as a user would paste it
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=SHELL_TIMEOUT_S,
                          check=False)
    # THEN every command succeeded, no call answered 4xx/5xx
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert '"event_id"' in done.stdout, done.stdout

    # AND over the API: the rule's core.echo execution with "disk full" succeeded
    user = cloud.login(username, README_PASSWORD)

    def disk_full() -> list[dict[str, object]]:
        runs = items(user, "/api/v1/executions", action_ref="core.echo")
        return [r for r in runs if r["parameters"] == {"message": "disk full"}]

    (execution,) = poll(disk_full, "the README rule's core.echo execution", cloud)
    assert execution["enforcement_id"] is not None, execution  # made by the rule, not run directly
    final = wait_final(user, int(str(execution["id"])))
    assert final["status"] == "succeeded", final
    # AND the datastore key exists, encrypted, with its value
    stored = user.get("/api/v1/datastore/api_token")
    assert stored.status_code == 200, stored.text
    assert (stored.json()["value"], stored.json()["encrypted"]) == ("t0k3n", True)
    # AND the webhook and the cron trigger exist
    crons = items(user, "/api/v1/triggers", type="cron")
    assert [t["parameters"]["expression"] for t in crons] == ["*/10 * * * * *"], crons
    assert len(items(user, "/api/v1/triggers", type="webhook")) == 1


WORKFLOW_SECTION = "## A workflow that waits for approval"


def test_readme_approval_workflow_runs_verbatim(cloud: Cloud) -> None:
    # GIVEN the README's first block (it sets API, H and field) and then its workflow block, as one shell
    username = f"readme-wf-{uuid.uuid4().hex[:10]}"
    script = runnable(readme_block() + sh_block(WORKFLOW_SECTION), cloud.url, username)
    # WHEN it runs in bash
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=SHELL_TIMEOUT_S,
                          check=False)
    # THEN every command succeeded, and the answer was taken
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert '"status":"responded"' in done.stdout, done.stdout
    # AND the workflow ended as the README says, its three tasks run in order
    user = cloud.login(username, README_PASSWORD)
    (run,) = items(user, "/api/v1/executions", action_ref="ops.deploy")
    final = wait_final(user, int(str(run["id"])))
    assert final["status"] == "succeeded", final
    assert final["result"]["output"] == {"shipped": "approved=True"}, final["result"]
    tasks = [c["task_name"] for c in items(user, "/api/v1/executions", parent_execution_id=run["id"])]
    assert tasks == ["plan", "approve", "ship"], tasks

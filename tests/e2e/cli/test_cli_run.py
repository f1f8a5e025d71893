"""`attune run`, `attune execution list|get|cancel|tail` and `attune inquiry list|respond`, end to end."""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.cli.runner import PACKS, logged_in
from tests.e2e.client import Cloud


def test_run_waits_and_prints_the_result(cloud: Cloud, tmp_path: Path) -> None:
    cli = logged_in(cloud, tmp_path, "cli-run")
    # WHEN an action runs with key=value parameters THEN the command waits and prints its output, exit 0
    done = cli.ok("run", "core.echo", "message=hello world")
    assert "core.echo: succeeded" in done.stdout and '"message": "hello world"' in done.stdout, done.stdout
    # AND --json prints the final execution; a parameter the action declares a string keeps its text
    final = cli.json("run", "core.echo", "message=42")
    assert (final["status"], final["parameters"]) == ("succeeded", {"message": "42"}), final


def test_run_exits_non_zero_when_the_action_fails(cloud: Cloud, tmp_path: Path) -> None:
    # GIVEN the catalogue's failing_pack
    cli = logged_in(cloud, tmp_path, "cli-runfail")
    cli.ok("pack", "register", str(PACKS / "failing_pack"))
    # WHEN its actions run THEN the exit status is 1 and stderr shows what went wrong
    done = cli("run", "failing_pack.exit_code", "code=3")
    assert done.returncode == 1, done
    assert "failing_pack.exit_code: failed" in done.stdout
    assert "failing on purpose with exit code 3" in done.stderr, done.stderr
    raised = cli("run", "failing_pack.raise_error", "message=boom")
    assert raised.returncode == 1 and "RuntimeError: boom" in raised.stderr, raised


def test_run_of_an_unknown_action_prints_the_apis_error(cloud: Cloud, tmp_path: Path) -> None:
    cli = logged_in(cloud, tmp_path, "cli-run404")
    done = cli.fails("run", "nope.missing", "a=1")
    assert "404" in done.stderr and "nope.missing" in done.stderr, done.stderr
    bad = cli.fails("run", "core.echo", "no-equals-sign")
    assert "'no-equals-sign' is not key=value" in bad.stderr, bad.stderr
    # AND parameters the action's schema refuses fail the execution at once, with the reason
    refused = cli("run", "core.sleep", "seconds=[1]")
    assert refused.returncode == 1 and "seconds" in refused.stderr, refused


def test_a_workflow_pack_runs_its_sequence(cloud: Cloud, tmp_path: Path) -> None:
    # GIVEN the catalogue's workflow_pack (the seed's task_a -> task_b -> task_c, defined in workflows/)
    cli = logged_in(cloud, tmp_path, "cli-wf")
    cli.ok("pack", "register", str(PACKS / "workflow_pack"))
    # WHEN it runs THEN the three tasks ran in order and the output is the chain's
    final = cli.json("run", "workflow_pack.sequence", "message=hi")
    assert final["status"] == "succeeded", final
    assert final["result"]["output"] == {"message": "a:hi b c"}, final["result"]
    tasks = cli.json("execution", "list", "--parent", str(final["id"]))["items"]
    assert [t["task_name"] for t in tasks] == ["task_a", "task_b", "task_c"], tasks


def test_async_run_then_tail_over_the_websocket(cloud: Cloud, tmp_path: Path) -> None:
    cli = logged_in(cloud, tmp_path, "cli-tail")
    # WHEN an action is started with --async THEN the command returns at once with the execution's id
    started = cli.json("run", "core.sleep", "seconds=2", "--async")
    assert started["status"] in {"requested", "scheduled", "running"}, started
    # AND tail follows it live over the WebSocket to the end: statuses on stderr, the result, exit 0
    tail = cli.ok("execution", "tail", str(started["id"]))
    assert "polling" not in tail.stderr, tail.stderr
    assert "running" in tail.stderr and "succeeded" in tail.stderr, tail.stderr
    assert f"execution {started['id']} core.sleep: succeeded" in tail.stdout


def test_tail_falls_back_to_polling_without_a_websocket(cloud: Cloud, tmp_path: Path) -> None:
    cli = logged_in(cloud, tmp_path, "cli-poll")
    started = cli.json("run", "core.sleep", "seconds=1", "--async")
    tail = cli.ok("execution", "tail", str(started["id"]), ATTUNE_WS_URL="ws://127.0.0.1:9")
    assert "live notifications unavailable" in tail.stderr and "polling" in tail.stderr, tail.stderr
    assert "core.sleep: succeeded" in tail.stdout
    off = cli.json("execution", "tail", str(started["id"]), ATTUNE_WS_URL="off")
    assert off["status"] == "succeeded"


def test_tail_of_an_unknown_execution_is_a_404(cloud: Cloud, tmp_path: Path) -> None:
    done = logged_in(cloud, tmp_path, "cli-tail404").fails("execution", "tail", "999999999")
    assert "404" in done.stderr, done.stderr


def test_execution_list_get_and_cancel(cloud: Cloud, tmp_path: Path) -> None:
    cli = logged_in(cloud, tmp_path, "cli-exec")
    # GIVEN a long sleep started, and one echo run to its end
    sleeping = cli.json("run", "core.sleep", "seconds=60", "--async")
    echoed = cli.json("run", "core.echo", "message=listed")
    # WHEN listed THEN both are there, newest first; filters narrow it
    listed = cli.json("execution", "list")["items"]
    assert [e["id"] for e in listed] == [echoed["id"], sleeping["id"]]
    assert [e["id"] for e in cli.json("execution", "list", "--status", "succeeded")["items"]] == [echoed["id"]]
    table = cli.ok("execution", "list", "--action", "core.echo").stdout
    assert str(echoed["id"]) in table and "succeeded" in table
    # AND get shows one with its result
    shown = cli.ok("execution", "get", str(echoed["id"])).stdout
    assert "core.echo" in shown and "listed" in shown
    # WHEN the sleep is canceled THEN it ends canceled, and following it exits non-zero
    canceled = cli.json("execution", "cancel", str(sleeping["id"]))
    assert canceled["status"] in {"canceling", "canceled"}, canceled
    tail = cli("execution", "tail", str(sleeping["id"]), "--json")
    assert tail.returncode == 1, tail
    assert '"status": "canceled"' in tail.stdout


def test_cancel_of_a_finished_execution_is_the_apis_409(cloud: Cloud, tmp_path: Path) -> None:
    cli = logged_in(cloud, tmp_path, "cli-cancel409")
    done = cli.json("run", "core.echo", "message=x")
    refused = cli.fails("execution", "cancel", str(done["id"]))
    assert "409" in refused.stderr, refused.stderr
    assert "404" in cli.fails("execution", "get", "999999999").stderr


def test_inquiry_list_and_respond(cloud: Cloud, tmp_path: Path) -> None:
    # GIVEN an execution waiting for an answer (core.ask)
    cli = logged_in(cloud, tmp_path, "cli-inquiry")
    asked = cli.json("run", "core.ask", "prompt=Ship it?", "--async")

    def pending() -> list[dict[str, object]]:
        found: list[dict[str, object]] = cli.json("inquiry", "list", "--execution", str(asked["id"]))["items"]
        return found

    from tests.e2e.flow import poll

    (inquiry,) = poll(pending, "the pending inquiry", cloud)
    assert inquiry["prompt"] == "Ship it?"
    assert "Ship it?" in cli.ok("inquiry", "list").stdout
    # WHEN an answer that breaks the schema is given THEN the API's 400 names the field
    wrong = cli.fails("inquiry", "respond", str(inquiry["id"]), "approved=yes")
    assert "400" in wrong.stderr and "approved" in wrong.stderr, wrong.stderr
    # WHEN answered with key=value THEN it is responded and the execution succeeds with the answer
    answered = cli.ok("inquiry", "respond", str(inquiry["id"]), "approved=true")
    assert "responded" in answered.stdout
    final = cli.json("execution", "tail", str(asked["id"]))
    assert final["status"] == "succeeded" and final["result"]["output"] == {"approved": True}, final
    # AND a second answer is the API's 409
    assert "409" in cli.fails("inquiry", "respond", str(inquiry["id"]), "approved=false").stderr


def test_run_gives_up_waiting_at_its_timeout_with_exit_3(cloud: Cloud, tmp_path: Path) -> None:
    cli = logged_in(cloud, tmp_path, "cli-timeout")
    # WHEN a long action is run with a short --timeout THEN the command stops waiting, exit 3, saying how to follow
    done = cli("run", "core.sleep", "seconds=60", "--timeout", "1")
    assert done.returncode == 3, done
    found = re.search(r"execution (\d+) is still (\w+)", done.stderr)
    assert found is not None and "attune execution tail" in done.stderr, done.stderr
    # AND the execution goes on until canceled
    assert cli.json("execution", "cancel", found.group(1))["status"] in {"canceling", "canceled"}

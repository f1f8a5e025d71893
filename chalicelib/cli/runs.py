"""`attune run`, `attune execution ...` and `attune inquiry ...`: running actions and answering them.

`run` and `execution tail` exit 0 only when the execution `succeeded`, so a
shell script can chain on them (`attune run ops.check && deploy`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from chalicelib.cli import output
from chalicelib.cli.packs import quoted
from chalicelib.cli.state import json_option, state
from chalicelib.cli.values import parse_pairs, string_fields
from chalicelib.cli.watch import FINAL, Timeout, follow

EXECUTION_COLUMNS = [("id", "id"), ("action", "action_ref"), ("status", "status"), ("parent", "parent_execution_id"),
                     ("created", "created"), ("finished", "finished")]
INQUIRY_COLUMNS = [("id", "id"), ("execution", "execution_id"), ("status", "status"), ("prompt", "prompt"),
                   ("roles", "roles"), ("timeout at", "timeout_at")]
STATUSES = ("requested", "scheduled", "running", "paused", "canceling", "succeeded", "succeeded_with_errors",
            "failed", "canceled")
EXIT_FAILED = 1
EXIT_TIMEOUT = 3


def exit_code(execution: dict[str, Any]) -> int:
    """0 for `succeeded`, 1 for every other final status (failed, canceled, succeeded_with_errors)."""
    return 0 if execution.get("status") == "succeeded" else EXIT_FAILED


def show_result(execution: dict[str, Any]) -> None:
    """The final execution for people: its status, then its output (or stdout/stderr and the error)."""
    result = execution.get("result") or {}
    output.text(f"execution {execution['id']} {execution['action_ref']}: {execution['status']}")
    if result.get("output") is not None:
        output.text(json.dumps(result["output"], indent=2))
    elif result.get("stdout"):
        output.text(str(result["stdout"]).rstrip("\n"))
    if result.get("stderr") and execution.get("status") != "succeeded":
        output.note(str(result["stderr"]).rstrip("\n"))
    if result.get("error"):
        output.note(f"error: {result['error']}")


def _progress(execution: dict[str, Any]) -> None:
    if state().json:
        return
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    output.note(f"{stamp} {execution.get('id')} {execution.get('status')}")
    if execution.get("status") == "paused":
        output.note("waiting for an answer: `attune inquiry list`, then `attune inquiry respond ID key=value`")


def _finish(ctx: click.Context, execution_id: int, timeout: float | None) -> None:
    try:
        final = follow(state().session(), execution_id, _progress, timeout=timeout)
    except Timeout as exc:  # not an error of the execution: its own exit status
        output.note(f"Error: {exc.message}")
        ctx.exit(EXIT_TIMEOUT)
    if state().json:
        output.print_json(final)
    else:
        show_result(final)
    ctx.exit(exit_code(final))


@click.command("run")
@click.argument("ref")
@click.argument("parameters", nargs=-1)
@click.option("--async", "no_wait", is_flag=True, help="Print the execution and return at once.")
@click.option("--timeout", type=float, help="Give up waiting after this many seconds (exit 3).")
@json_option
@click.pass_context
def run(ctx: click.Context, ref: str, parameters: tuple[str, ...], no_wait: bool, timeout: float | None) -> None:
    """Run action REF with key=value PARAMETERS, wait, print the result; non-zero exit unless it succeeded.

    Values are JSON when they parse (count=3, ok=true, items='[1,2]'), else text (message=hello).

    Example: attune run core.echo message="hello world"
    """
    parse_pairs(parameters)  # a malformed argument fails before any request
    session = state().session()
    strings: frozenset[str] = frozenset()
    if parameters:  # a parameter declared a string keeps its text (message=42 is "42")
        strings = string_fields(session.call("GET", f"/api/v1/actions/{quoted(ref)}").get("parameters"))
    body = {"action_ref": ref, "parameters": parse_pairs(parameters, strings)}
    execution = session.call("POST", "/api/v1/executions", body)
    if no_wait:
        if state().json:
            output.print_json(execution)
        else:
            output.text(f"execution {execution['id']} {execution['status']}: follow it with "
                        f"`attune execution tail {execution['id']}`")
        return
    if execution["status"] in FINAL:  # refused at once (e.g. parameters the schema rejects)
        if state().json:
            output.print_json(execution)
        else:
            show_result(execution)
        ctx.exit(exit_code(execution))
    _finish(ctx, int(execution["id"]), timeout)


@click.group("execution")
def execution() -> None:
    """Executions: list, inspect, cancel, follow."""


@execution.command("list")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--action", "action_ref", help="Only executions of this action ref.")
@click.option("--parent", type=int, help="Only the tasks of this workflow execution.")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--offset", type=int, default=0)
@json_option
def execution_list(status: str | None, action_ref: str | None, parent: int | None, limit: int,
                   offset: int) -> None:
    """Executions, newest first."""
    query = {"status": status, "action_ref": action_ref, "parent_execution_id": parent, "limit": limit,
             "offset": offset}
    page = state().session().call("GET", "/api/v1/executions", query=query)
    if state().json:
        output.print_json(page)
    else:
        output.table(page["items"], EXECUTION_COLUMNS, total=page["total"])


@execution.command("get")
@click.argument("execution_id", type=int)
@json_option
def execution_get(execution_id: int) -> None:
    """One execution with its parameters and result."""
    body = state().session().call("GET", f"/api/v1/executions/{execution_id}")
    if state().json:
        output.print_json(body)
        return
    output.record(body, [("id", "id"), ("action", "action_ref"), ("status", "status"),
                         ("parameters", "parameters"), ("parent", "parent_execution_id"),
                         ("enforcement", "enforcement_id"), ("retries", "retry_count"), ("created", "created"),
                         ("started", "started"), ("finished", "finished"), ("exit code", "result.exit_code"),
                         ("output", "result.output"), ("stdout", "result.stdout"), ("stderr", "result.stderr"),
                         ("error", "result.error")])


@execution.command("cancel")
@click.argument("execution_id", type=int)
@json_option
def execution_cancel(execution_id: int) -> None:
    """Cancel an execution: `canceled` at once if nothing runs yet, else `canceling` until its process stops."""
    body = state().session().call("POST", f"/api/v1/executions/{execution_id}/cancel")
    if state().json:
        output.print_json(body)
    else:
        output.text(f"execution {body['id']}: {body['status']}")


@execution.command("tail")
@click.argument("execution_id", type=int)
@click.option("--timeout", type=float, help="Give up waiting after this many seconds (exit 3).")
@json_option
@click.pass_context
def execution_tail(ctx: click.Context, execution_id: int, timeout: float | None) -> None:
    """Follow an execution live (each status as it changes), then print its result; exit as `run` does."""
    _finish(ctx, execution_id, timeout)


@click.group("inquiry")
def inquiry() -> None:
    """Inquiries: questions that paused a workflow, and your answers."""


@inquiry.command("list")
@click.option("--status", type=click.Choice(("pending", "responded", "expired", "any")), default="pending",
              show_default=True)
@click.option("--execution", "execution_id", type=int, help="Only the inquiries of this (workflow) execution.")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
def inquiry_list(status: str, execution_id: int | None, limit: int) -> None:
    """Inquiries, newest first (pending ones unless --status says otherwise)."""
    query = {"status": None if status == "any" else status, "execution_id": execution_id, "limit": limit}
    page = state().session().call("GET", "/api/v1/inquiries", query=query)
    if state().json:
        output.print_json(page)
    else:
        output.table(page["items"], INQUIRY_COLUMNS, total=page["total"])


@inquiry.command("respond")
@click.argument("inquiry_id", type=int)
@click.argument("response", nargs=-1, required=True)
@json_option
def inquiry_respond(inquiry_id: int, response: tuple[str, ...]) -> None:
    """Answer inquiry ID with key=value fields (checked against its schema), e.g. approved=true."""
    parse_pairs(response)  # a malformed argument fails before any request
    session = state().session()
    schema = session.call("GET", f"/api/v1/inquiries/{inquiry_id}").get("schema") or {}
    answer = parse_pairs(response, string_fields(schema.get("properties")))
    body = session.call("POST", f"/api/v1/inquiries/{inquiry_id}/respond", {"response": answer})
    if state().json:
        output.print_json(body)
    else:
        output.text(f"inquiry {body['id']}: {body['status']} (execution {body['execution_id']} resumes)")

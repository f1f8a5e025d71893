"""`attune pack ...` and `attune action ...`: packs from directories, and the actions they define."""

from __future__ import annotations

import base64
import urllib.parse
from pathlib import Path
from typing import Any

import click

from chalicelib.cli import output
from chalicelib.cli.packdir import pack_archive
from chalicelib.cli.state import json_option, state

PACK_COLUMNS = [("id", "id"), ("ref", "ref"), ("version", "version"), ("system", "system"),
                ("actions", "actions"), ("label", "label")]
ACTION_COLUMNS = [("ref", "ref"), ("runner", "runner_type"), ("enabled", "enabled"), ("description", "description")]


def quoted(ref: str) -> str:
    """A ref or id as one path segment."""
    return urllib.parse.quote(ref, safe="")


def _archive_body(directory: Path) -> dict[str, Any]:
    return {"archive": base64.b64encode(pack_archive(directory)).decode("ascii")}


def _show_pack(body: dict[str, Any], verb: str) -> None:
    if state().json:
        output.print_json(body)
        return
    output.text(f"{verb} pack {body['ref']} {body['version']} (id {body['id']})")
    output.record(body, [("actions", "actions"), ("files", "files"), ("changes", "changes")])


@click.group("pack")
def pack() -> None:
    """Packs: register a directory, list, reload."""


@pack.command("register")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@json_option
def pack_register(directory: Path) -> None:
    """Register the pack in DIRECTORY (pack.yaml, actions/, rules/, sensors/, ...), uploaded as a tar.gz.

    Example: attune pack register tests/fixtures/packs/test_pack
    """
    body = state().session().call("POST", "/api/v1/packs", _archive_body(directory))
    _show_pack(body, "registered")


@pack.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--offset", type=int, default=0)
@json_option
def pack_list(limit: int, offset: int) -> None:
    """The packs you can use: yours and the system packs."""
    page = state().session().call("GET", "/api/v1/packs", query={"limit": limit, "offset": offset})
    if state().json:
        output.print_json(page)
    else:
        output.table(page["items"], PACK_COLUMNS, total=page["total"])


@pack.command("reload")
@click.argument("ref")
@click.option("--dir", "directory", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Upload this directory's files as the new version (else the stored files are re-read).")
@click.option("--version", help="The new version (else pack.yaml's when newer, else the next patch).")
@json_option
def pack_reload(ref: str, directory: Path | None, version: str | None) -> None:
    """Install pack REF (ref or id) again as a new version; running executions finish on the old code."""
    body: dict[str, Any] = _archive_body(directory) if directory else {}
    if version:
        body["version"] = version
    answer = state().session().call("POST", f"/api/v1/packs/{quoted(ref)}/reload", body or None)
    _show_pack(answer, "reloaded")


@click.group("action")
def action() -> None:
    """Actions: list and inspect."""


@action.command("list")
@click.option("--pack", "pack_ref", help="Only this pack's actions.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--offset", type=int, default=0)
@json_option
def action_list(pack_ref: str | None, limit: int, offset: int) -> None:
    """Actions you can run, newest first."""
    page = state().session().call("GET", "/api/v1/actions",
                                  query={"pack": pack_ref, "limit": limit, "offset": offset})
    if state().json:
        output.print_json(page)
    else:
        output.table(page["items"], ACTION_COLUMNS, total=page["total"])


@action.command("get")
@click.argument("ref")
@json_option
def action_get(ref: str) -> None:
    """One action (by ref or id) and its parameters."""
    body = state().session().call("GET", f"/api/v1/actions/{quoted(ref)}")
    if state().json:
        output.print_json(body)
        return
    output.record(body, [("ref", "ref"), ("runner", "runner_type"), ("entry point", "entry_point"),
                         ("timeout", "timeout"), ("enabled", "enabled"), ("description", "description")])
    params = [{"name": name, **spec} for name, spec in (body.get("parameters") or {}).items()]
    if params:
        output.table(params, [("parameter", "name"), ("type", "type"), ("required", "required"),
                              ("default", "default"), ("description", "description")], title="parameters")

"""Installing a pack version: the imperative shell around `chalicelib.core.packs`.

The API (tenant packs) and `bootstrap.load_system_packs()` (system packs)
install the same way: validate everything first, then write the pack row,
then upload, then sync the actions and audit, all in the caller's
transaction. The row is written before the upload on purpose: its unique
index makes a concurrent registration of the same ref wait for this one and
fail, so it can never overwrite this version's object; and a failed upload
rolls the row back. An object left behind by a transaction that failed later
is never referenced, and the next attempt of that version overwrites it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.aws import storage
from chalicelib.core.errors import Conflict, NotFound, ValidationFailed
from chalicelib.core.pack_archive import Files
from chalicelib.core.pack_rules import RuleDef, parse_rules
from chalicelib.core.packs import (
    ActionDef,
    PackIdentity,
    entry_point_path,
    file_index,
    pack_identity,
    parse_actions,
    read_manifest,
)
from chalicelib.core.runners import RUNNERS
from chalicelib.core.versions import bump_patch, is_newer
from chalicelib.core.workflow import parse_workflow
from chalicelib.db import actions as action_rows
from chalicelib.db import audit
from chalicelib.db import packs as pack_rows
from chalicelib.db.pool import Cursor
from chalicelib.models.packs import ActionFields
from chalicelib.packs import rules as pack_rules
from chalicelib.packs.rules import AfterCommit
from chalicelib.sensors import registry as sensors


@dataclass(frozen=True)
class LoadedPack:
    """A pack read and validated, ready to install."""

    identity: PackIdentity
    files: Files
    actions: list[ActionDef]
    rules: list[RuleDef] = field(default_factory=list)


def load(
    files: Files,
    *,
    ref: str | None,
    version: str | None,
    label: str | None = None,
    description: str | None = None,
) -> LoadedPack:
    """Read the manifest, every action and rule file; raises on the first problem, naming the file."""
    identity = pack_identity(read_manifest(files), ref=ref, version=version, label=label, description=description)
    return LoadedPack(identity, files, parse_actions(identity.ref, files), parse_rules(identity.ref, files))


def file_defined_actions(pack: dict[str, Any]) -> list[str]:
    """Names of the actions that the pack's current files define (recorded in its file index)."""
    return [e["action"] for e in pack.get("files") or [] if isinstance(e, dict) and e.get("action")]


def install(
    cur: Cursor,
    tenant_id: int | None,
    pack: LoadedPack,
    *,
    actor: str,
    existing: dict[str, Any] | None = None,
    after_commit: AfterCommit | None = None,
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Store a new pack, or a new version of `existing`; returns the row and the action (and rule) changes.

    `after_commit` receives what must run once the transaction commits (a rule's timer fires from then on).
    """
    ident = pack.identity
    key = storage.pack_key(tenant_id, ident.ref, ident.version)
    index = file_index(pack.files, pack.actions, {r.source: pack_rules.index_entry(r) for r in pack.rules})
    if existing is None:
        row = pack_rows.insert(
            cur, tenant_id, ref=ident.ref, version=ident.version, label=ident.label,
            description=ident.description, storage_key=key, files=index,
        )
        previous: list[str] = []
    else:
        row = pack_rows.update(
            cur, tenant_id, existing["id"], version=ident.version, label=ident.label,
            description=ident.description, storage_key=key, files=index,
        )
        previous = file_defined_actions(existing)
    storage.put_pack(key, pack.files)
    changes = action_rows.sync(cur, tenant_id, row["id"], pack.actions, previous)
    for action in pack.actions:  # after the sync: a workflow may name its pack's own actions
        check_workflow_actions(cur, tenant_id, action.fields, where=action.source or f"action '{action.ref}'")
    sensors.sync_pack(cur, tenant_id, row, pack.files, actor=actor)  # each sensor: its trigger and its schedule
    rule_changes = pack_rules.sync_pack(cur, tenant_id, row, pack.rules, pack_rules.previous_rules(existing),
                                        actor=actor, after_commit=after_commit)  # may fire on those triggers
    changes = {**changes, **{k: v for k, v in rule_changes.items() if v}}
    detail: dict[str, Any] = {"ref": ident.ref, "version": ident.version, **changes}
    if existing is not None:
        detail["previous_version"] = existing["version"]
    audit.record(
        cur, tenant_id=tenant_id, actor=actor, action="pack.reloaded" if existing else "pack.registered",
        entity_type="pack", entity_id=row["id"], detail=detail,
    )
    return row, changes


def check_workflow_actions(cur: Cursor, tenant_id: int | None, fields: ActionFields, *, where: str) -> None:
    """Every action a workflow's tasks name must exist (the tenant's own or a system action): a 400 naming the task.

    Run in the registering transaction, after the pack's own actions are written.
    """
    if fields.workflow is None:
        return
    for task in parse_workflow(fields.workflow, where=f"{where}: workflow").tasks:
        if task.action is None:
            continue
        if tenant_id is None:
            found = action_rows.find_system(cur, task.action)
        else:
            found = action_rows.find_for_run(cur, tenant_id, task.action)
        if found is None:
            raise ValidationFailed(f"{where}: workflow: task '{task.name}' runs action '{task.action}', "
                                   "which does not exist (register it first, or in the same pack)")


def check_new_ref(cur: Cursor, tenant_id: int, ref: str) -> None:
    """A tenant's pack ref may neither shadow a system pack nor repeat one of its own."""
    if pack_rows.system_pack(cur, ref) is not None:
        raise Conflict(
            f"pack ref '{ref}' belongs to a system pack available to every tenant; choose another ref"
        )
    if pack_rows.tenant_has_ref(cur, tenant_id, ref):
        raise Conflict(f"pack '{ref}' already exists; reload it with POST /api/v1/packs/{{id}}/reload")


def next_version(current: str, *, requested: str | None, declared: str | None) -> str:
    """The version a reload installs: the requested one (which must move forward), else the
    files' pack.yaml version when it is newer, else the next patch."""
    if requested is not None:
        if not is_newer(requested, current):
            raise Conflict(f"version {requested} is not greater than the current version {current}")
        return requested
    if declared is not None and is_newer(declared, current):
        return declared
    return bump_patch(current)


def check_api_actions_survive(cur: Cursor, tenant_id: int | None, pack: dict[str, Any], new: LoadedPack) -> None:
    """Actions added through the API stay across a reload; their entry points must too."""
    from_files = set(file_defined_actions(pack)) | {a.name for a in new.actions}
    for action in action_rows.of_pack(cur, tenant_id, pack["id"]):
        if action["name"] in from_files or action["entry_point"] is None:
            continue
        kind = RUNNERS.get(action["runner_type"])
        if kind is not None and kind.process:  # it runs a file from the pack
            path = entry_point_path(action["entry_point"])
            if path not in new.files:
                raise ValidationFailed(
                    f"action '{action['ref']}' (created through the API) runs {path!r}, "
                    "which the new files no longer contain; delete or change that action first"
                )


def reload(
    cur: Cursor,
    tenant_id: int,
    pack_id: int,
    files: Files | None,
    *,
    actor: str,
    version: str | None = None,
    label: str | None = None,
    description: str | None = None,
    after_commit: AfterCommit | None = None,
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Re-read a tenant pack (its stored files, or new ones) and install it as a new version."""
    current = pack_rows.lock(cur, tenant_id, pack_id)
    if current is None:
        raise NotFound(f"pack {pack_id} not found")
    if files is None:
        files = storage.get_pack_files(current["storage_key"])
    manifest = read_manifest(files)
    target = next_version(current["version"], requested=version, declared=manifest.version if manifest else None)
    loaded = load(
        files, ref=current["ref"], version=target, label=label, description=description,
    )
    ident = loaded.identity
    loaded = LoadedPack(
        PackIdentity(ident.ref, ident.version, ident.label or current["label"],
                     ident.description or current["description"]),
        loaded.files, loaded.actions, loaded.rules,
    )
    check_api_actions_survive(cur, tenant_id, current, loaded)
    return install(cur, tenant_id, loaded, actor=actor, existing=current, after_commit=after_commit)


def delete_rules(cur: Cursor, tenant_id: int, pack: dict[str, Any]) -> list[str]:
    """Remove the rules (and their inline triggers) that the pack's files made; called as the pack is deleted."""
    return pack_rules.remove_pack_rules(cur, tenant_id, pack)

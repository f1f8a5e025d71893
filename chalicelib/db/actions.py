"""Action rows: lookups, writes, and syncing a pack's file-defined actions.

Action refs are `<pack>.<name>` and pack refs are unique per tenant and never
shadow a system pack, so an action ref names at most one row a tenant can see.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.core.jsondoc import as_id, ascii_digits
from chalicelib.core.packs import ActionDef, dump_parameters
from chalicelib.db.crud import Table
from chalicelib.db.pool import Cursor
from chalicelib.models.packs import ActionFields, concurrency_limit

ACTION_COLUMNS = (
    "id", "tenant_id", "pack_id", "ref", "name", "description", "runner_type", "entry_point",
    "parameters", "timeout", "retry", "http_config", "image", "workflow", "with_items", "concurrency", "enabled",
    "created", "updated",
)
# Lists leave `code` out: it can be up to 1 MiB per action.
ACTIONS = Table("action", ACTION_COLUMNS, frozenset({"pack_id", "runner_type", "enabled"}), shares_system_rows=True)
ACTIONS_WITH_CODE = Table("action", (*ACTION_COLUMNS, "code"), shares_system_rows=True)

_RETURNING = """
RETURNING id, tenant_id, pack_id, ref, name, description, runner_type, entry_point, parameters,
          timeout, retry, http_config, image, workflow, with_items, concurrency, enabled, created, updated, code
"""
INSERT_ACTION = """
INSERT INTO attune.action (tenant_id, pack_id, ref, name, description, runner_type, entry_point,
                           parameters, code, timeout, retry, http_config, image, workflow, with_items,
                           concurrency, enabled)
VALUES (%(tenant_id)s, %(pack_id)s, %(ref)s, %(name)s, %(description)s, %(runner_type)s, %(entry_point)s,
        %(parameters)s, %(code)s, %(timeout)s, %(retry)s, %(http_config)s, %(image)s, %(workflow)s,
        %(with_items)s, %(concurrency)s, %(enabled)s)
""" + _RETURNING
UPDATE_ACTION = """
UPDATE attune.action
SET description = %(description)s, runner_type = %(runner_type)s, entry_point = %(entry_point)s,
    parameters = %(parameters)s, code = %(code)s, timeout = %(timeout)s, retry = %(retry)s,
    http_config = %(http_config)s, image = %(image)s, workflow = %(workflow)s, with_items = %(with_items)s,
    concurrency = %(concurrency)s, enabled = %(enabled)s
WHERE id = %(id)s AND tenant_id = %(tenant_id)s
""" + _RETURNING
# Unchanged actions are not rewritten, so `updated` keeps meaning "changed".
UPSERT_ACTION = """
INSERT INTO attune.action AS a (tenant_id, pack_id, ref, name, description, runner_type, entry_point,
                                parameters, code, timeout, retry, http_config, image, workflow, with_items,
                           concurrency, enabled)
VALUES (%(tenant_id)s, %(pack_id)s, %(ref)s, %(name)s, %(description)s, %(runner_type)s, %(entry_point)s,
        %(parameters)s, %(code)s, %(timeout)s, %(retry)s, %(http_config)s, %(image)s, %(workflow)s,
        %(with_items)s, %(concurrency)s, %(enabled)s)
ON CONFLICT ((coalesce(tenant_id, 0)), ref) DO UPDATE
SET pack_id = EXCLUDED.pack_id, name = EXCLUDED.name, description = EXCLUDED.description,
    runner_type = EXCLUDED.runner_type, entry_point = EXCLUDED.entry_point,
    parameters = EXCLUDED.parameters, code = EXCLUDED.code, timeout = EXCLUDED.timeout,
    retry = EXCLUDED.retry, http_config = EXCLUDED.http_config, image = EXCLUDED.image,
    workflow = EXCLUDED.workflow, with_items = EXCLUDED.with_items, concurrency = EXCLUDED.concurrency,
    enabled = EXCLUDED.enabled
WHERE (a.pack_id, a.name, a.description, a.runner_type, a.entry_point, a.parameters, a.code,
       a.timeout, a.retry, a.http_config, a.image, a.workflow, a.with_items, a.concurrency, a.enabled)
      IS DISTINCT FROM
      (EXCLUDED.pack_id, EXCLUDED.name, EXCLUDED.description, EXCLUDED.runner_type,
       EXCLUDED.entry_point, EXCLUDED.parameters, EXCLUDED.code, EXCLUDED.timeout, EXCLUDED.retry,
       EXCLUDED.http_config, EXCLUDED.image, EXCLUDED.workflow, EXCLUDED.with_items, EXCLUDED.concurrency,
       EXCLUDED.enabled)
RETURNING ref, (xmax = 0) AS inserted
"""
DELETE_PACK_ACTIONS_BY_NAME = """
DELETE FROM attune.action
WHERE pack_id = %(pack_id)s AND tenant_id IS NOT DISTINCT FROM %(tenant_id)s AND name = ANY(%(names)s)
RETURNING ref
"""
ACTIONS_OF_PACK = """
SELECT id, ref, name, runner_type, entry_point FROM attune.action
WHERE pack_id = %(pack_id)s AND tenant_id IS NOT DISTINCT FROM %(tenant_id)s
ORDER BY ref
"""
# What a worker needs to run an action: its definition and the pack version
# to fetch. Read when the execution starts, so a reload during a run does not
# change the code under it.
FIND_FOR_RUN = """
SELECT a.id, a.tenant_id, a.ref, a.name, a.runner_type, a.entry_point, a.parameters, a.code, a.timeout,
       a.retry, a.http_config, a.image, a.workflow, a.with_items, a.concurrency, a.enabled,
       p.id AS pack_id, p.ref AS pack_ref, p.version AS pack_version, p.storage_key AS pack_storage_key
FROM attune.action a JOIN attune.pack p ON p.id = a.pack_id
WHERE a.ref = %(ref)s AND (a.tenant_id = %(tenant_id)s OR a.tenant_id IS NULL)
ORDER BY a.tenant_id NULLS LAST
LIMIT 1
"""


def find(cur: Cursor, tenant_id: int, key: str, *, with_code: bool = False) -> dict[str, Any] | None:
    """An action the tenant can see, by numeric id or by ref (its own before a system one)."""
    table = ACTIONS_WITH_CODE if with_code else ACTIONS
    if ascii_digits(key):
        action_id = as_id(key)
        return table.get(cur, tenant_id, action_id) if action_id is not None else None
    return table.get_by(cur, tenant_id, "ref", key)


FIND_SYSTEM = "SELECT id, ref FROM attune.action WHERE ref = %(ref)s AND tenant_id IS NULL"


def find_system(cur: Cursor, ref: str) -> dict[str, Any] | None:
    """A system action by ref (what a system pack's workflow may name)."""
    cur.execute(FIND_SYSTEM, {"ref": ref})
    return cur.fetchone()


def find_for_run(cur: Cursor, tenant_id: int, ref: str) -> dict[str, Any] | None:
    """The action with its pack's version and storage key (the tenant's own before a system one)."""
    cur.execute(FIND_FOR_RUN, {"tenant_id": tenant_id, "ref": ref})
    return cur.fetchone()


def _columns(fields: ActionFields) -> dict[str, Any]:
    def json_or_none(value: Any) -> Jsonb | None:
        return None if value is None else Jsonb(value)

    return {
        "description": fields.description,
        "runner_type": fields.runner_type,
        "entry_point": fields.entry_point,
        "parameters": Jsonb(dump_parameters(fields.parameters)),
        "code": fields.code,
        "timeout": fields.timeout,
        "retry": json_or_none(fields.retry.model_dump(mode="json") if fields.retry else None),
        "http_config": json_or_none(fields.http_config.model_dump(mode="json") if fields.http_config else None),
        "image": fields.image,
        "workflow": json_or_none(fields.workflow),
        "with_items": json_or_none(fields.with_items),
        "concurrency": concurrency_limit(fields.concurrency),
        "enabled": fields.enabled,
    }


def insert(
    cur: Cursor, tenant_id: int | None, pack_id: int, *, ref: str, name: str, fields: ActionFields
) -> dict[str, Any]:
    """A new action row."""
    params = {"tenant_id": tenant_id, "pack_id": pack_id, "ref": ref, "name": name, **_columns(fields)}
    cur.execute(INSERT_ACTION, params)
    row = cur.fetchone()
    assert row is not None
    return row


def update(cur: Cursor, tenant_id: int, action_id: int, fields: ActionFields) -> dict[str, Any] | None:
    """Replace the tenant's action definition; None when it is not the tenant's."""
    cur.execute(UPDATE_ACTION, {"id": action_id, "tenant_id": tenant_id, **_columns(fields)})
    return cur.fetchone()


def of_pack(cur: Cursor, tenant_id: int | None, pack_id: int) -> list[dict[str, Any]]:
    """The pack's actions (refs, names, entry points), however they were created."""
    cur.execute(ACTIONS_OF_PACK, {"tenant_id": tenant_id, "pack_id": pack_id})
    return cur.fetchall()


def sync(
    cur: Cursor,
    tenant_id: int | None,
    pack_id: int,
    actions: list[ActionDef],
    previously_from_files: Collection[str],
) -> dict[str, list[str]]:
    """Make the pack's file-defined actions match `actions`: add new, update changed, remove gone.

    Only actions that earlier files defined are removed when their file is
    gone; actions added through the API to the pack are left alone.
    """
    added: list[str] = []
    updated: list[str] = []
    for action in actions:
        cur.execute(
            UPSERT_ACTION,
            {"tenant_id": tenant_id, "pack_id": pack_id, "ref": action.ref, "name": action.name,
             **_columns(action.fields)},
        )
        row = cur.fetchone()
        if row is not None:
            (added if row["inserted"] else updated).append(action.ref)
    gone = sorted(set(previously_from_files) - {a.name for a in actions})
    removed: list[str] = []
    if gone:
        cur.execute(DELETE_PACK_ACTIONS_BY_NAME, {"pack_id": pack_id, "tenant_id": tenant_id, "names": gone})
        removed = sorted(r["ref"] for r in cur.fetchall())
    return {"added": added, "updated": updated, "removed": removed}

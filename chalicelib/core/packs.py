"""Pack contents, pure: `pack.yaml`, `actions/*.yaml`, file index, parameter schemas.

Everything a tenant uploads passes through here (and through
`chalicelib.core.pack_archive`, which checks paths, sizes and archives)
before anything is stored, so every check that protects the platform lives
in one place: YAML is parsed without aliases (the "billion laughs"
expansion) and entry points stay inside the pack. Each refusal is a 400
that names the file and the problem, because a pack author fixes files,
not stack traces.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from chalicelib.core.errors import ValidationFailed
from chalicelib.core.pack_archive import MANIFEST_NAMES, Files, clean_path
from chalicelib.core.runners import SCRIPT_RUNNERS
from chalicelib.core.templating import check_tree
from chalicelib.models.packs import (
    ACTION_NAME_PATTERN,
    ActionFields,
    PackManifest,
    Parameters,
    ParamSpec,
)
from chalicelib.models.sensors import SENSOR_NAME_PATTERN, SensorFields

MAX_YAML_BYTES = 512 * 1024
ACTIONS_DIR = "actions"
SENSORS_DIR = "sensors"
WORKFLOWS_DIR = "workflows"

ST2_RUNNERS = {
    "python-script": "python3", "local-shell-script": "shell", "local-shell-cmd": "shell",
    "remote-shell-script": "shell", "http-request": "http", "orquesta": "workflow",
    "action-chain": "workflow", "inquirer": "inquiry",
}
_PARAMETERS = TypeAdapter(Parameters)


def file_index(
    files: Files, actions: list[ActionDef] | None = None, rules: Mapping[str, Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """What the pack row records of its files; a YAML that defines an action names it, a rule file its rule
    (`rules` maps a rule file to what `chalicelib.packs.rules.index_entry` records, so a reload knows
    which rules and triggers the previous version made)."""
    defined = {a.source: a.name for a in actions or [] if a.source}
    index: list[dict[str, Any]] = []
    for path in sorted(files):
        entry: dict[str, Any] = {"path": path, "size": len(files[path]),
                                 "sha256": hashlib.sha256(files[path]).hexdigest()}
        if path in defined:
            entry["action"] = defined[path]
        entry.update((rules or {}).get(path, {}))
        index.append(entry)
    return index


class _PackYamlLoader(yaml.SafeLoader):
    """safe_load without aliases (their nesting expands exponentially downstream) and
    without YAML 1.1 timestamps (an unquoted 2026-01-27 stays the string it looks like)."""

    yaml_implicit_resolvers = {
        first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in pack YAML", event.start_mark
            )
        return super().compose_node(parent, index)


def load_yaml(path: str, raw: bytes) -> Any:
    """Parse one YAML file of a pack into JSON-compatible data; errors name the file and line."""
    if len(raw) > MAX_YAML_BYTES:
        raise ValidationFailed(f"{path}: YAML files are limited to {MAX_YAML_BYTES} bytes")
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_PackYamlLoader)  # noqa: S506 - a SafeLoader subclass
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"{path}: not UTF-8 text") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ValidationFailed(f"{path}: invalid YAML: {exc.problem or exc.context}{where}") from exc
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"{path}: invalid YAML: {exc}") from exc
    # What is stored is JSON (jsonb): refuse what it cannot hold here, naming the file.
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"{path}: only JSON-compatible values are allowed: {exc}") from exc
    if _has_nul(data):
        raise ValidationFailed(f"{path}: text may not contain NUL characters")
    return data


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(_has_nul(v) for v in value)


def describe(exc: ValidationError) -> str:
    """A pydantic error as `field: problem; ...`, the way pack authors read it."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(document)"
        problems.append(f"{loc}: {err['msg']}")
    return "; ".join(problems)


def read_manifest(files: Files) -> PackManifest | None:
    """The pack's `pack.yaml`, if it has one."""
    for name in MANIFEST_NAMES:
        if name in files:
            data = load_yaml(name, files[name])
            if not isinstance(data, dict):
                raise ValidationFailed(f"{name}: expected a mapping (ref, version, ...), got {type(data).__name__}")
            try:
                return PackManifest.model_validate(data)
            except ValidationError as exc:
                raise ValidationFailed(f"{name}: {describe(exc)}") from exc
    return None


@dataclass(frozen=True)
class PackIdentity:
    """Who a pack is, merged from the request body (which wins) and its `pack.yaml`."""

    ref: str
    version: str
    label: str | None
    description: str | None


def pack_identity(
    manifest: PackManifest | None,
    *,
    ref: str | None,
    version: str | None,
    label: str | None = None,
    description: str | None = None,
) -> PackIdentity:
    """Merge body and manifest; a ref that disagrees with pack.yaml is refused, not guessed."""
    m = manifest or PackManifest()
    if ref and m.ref and ref != m.ref:
        raise ValidationFailed(f"ref {ref!r} does not match the ref {m.ref!r} in pack.yaml")
    final_ref = ref or m.ref
    if not final_ref:
        raise ValidationFailed("ref is required: give it in the request body or in pack.yaml")
    final_version = version or m.version
    if not final_version:
        raise ValidationFailed("version is required: give it in the request body or in pack.yaml")
    return PackIdentity(final_ref, final_version, label or m.label or m.name, description or m.description)


@dataclass(frozen=True)
class ActionDef:
    """An action read from a pack's `actions/<file>.yaml`."""

    name: str
    ref: str
    source: str | None
    fields: ActionFields


def entry_point_path(entry_point: str, directory: str = ACTIONS_DIR) -> str:
    """Where an entry point lives in the pack.

    Authors write it from the pack root (`actions/process.py`, as the seed
    does) or from `actions/` (`process.py`, as StackStorm does); both must
    name the same file, so a path already under `actions/` is taken as is.
    Deciding from the text alone (not from which files exist) keeps the
    registration check and the worker agreeing on the file. A sensor's
    entry point is read the same way from `sensors/` (`directory`).
    """
    path = clean_path(entry_point)
    if path.startswith(f"{directory}/"):
        return path
    return clean_path(f"{directory}/{path}")


def workflow_path(entry_point: str, pack_files: Collection[str]) -> str:
    """Where a workflow action's definition file lives: as any entry point (`workflows/x.yaml` is
    StackStorm's `actions/workflows/x.yaml`) when the pack has that file, else under the pack's
    top-level `workflows/` (the layout docs/packs.md shows). Deciding by which file exists is safe
    here, unlike for code: only registration reads it, the definition is stored with the action."""
    path = entry_point_path(entry_point)
    top = clean_path(entry_point)
    if path not in pack_files and top.startswith(f"{WORKFLOWS_DIR}/") and top in pack_files:
        return top
    return path


def check_action(fields: ActionFields, pack_files: Collection[str], *, where: str) -> None:
    """Runner-specific rules: what each runner needs, and fields it would silently ignore."""
    runner = fields.runner_type
    if runner in SCRIPT_RUNNERS or runner == "container":
        if fields.code is not None and fields.entry_point is not None:
            raise ValidationFailed(f"{where}: give entry_point or code, not both")
        if runner != "container" and fields.code is None and fields.entry_point is None:
            raise ValidationFailed(
                f"{where}: runner '{runner}' needs an entry_point (a file under the pack's "
                "actions/ directory) or inline code"
            )
    elif fields.code is not None:
        raise ValidationFailed(f"{where}: code is only used by the python3, shell, node and container runners")
    if fields.entry_point is not None and runner in SCRIPT_RUNNERS | {"container", "workflow"}:
        path = (workflow_path(fields.entry_point, pack_files) if runner == "workflow"
                else entry_point_path(fields.entry_point))
        if path not in pack_files:
            raise ValidationFailed(
                f"{where}: entry_point {fields.entry_point!r} not found: no file {path!r} in the pack "
                f"(write it from the pack root, '{ACTIONS_DIR}/x.py', or from {ACTIONS_DIR}/, 'x.py')"
            )
    elif fields.entry_point is not None:
        raise ValidationFailed(f"{where}: runner '{runner}' does not use an entry_point")
    needs = {"http": ("http_config", "http_config with a url"), "container": ("image", "an image"),
             "workflow": ("workflow", "a workflow definition")}
    for other, (field, what) in needs.items():
        given = getattr(fields, field) is not None
        if runner == other and not given:
            raise ValidationFailed(f"{where}: runner '{runner}' needs {what}")
        if runner != other and given:
            raise ValidationFailed(f"{where}: {field} is only used by the '{other}' runner, not '{runner}'")
    _check_iteration(fields, where)


def _check_iteration(fields: ActionFields, where: str) -> None:
    """A workflow definition and the action-level with_items, checked at registration (400 naming the task)."""
    if fields.workflow is not None:
        from chalicelib.core.workflow import parse_workflow  # here: the workflow model reads core.packs

        parse_workflow(fields.workflow, where=f"{where}: workflow")
    if fields.with_items is not None:
        if fields.runner_type not in SCRIPT_RUNNERS | {"http", "container"}:
            raise ValidationFailed(f"{where}: with_items runs an action's own code once per item; "
                                   f"runner '{fields.runner_type}' has none (use a workflow task's with_items)")
        check_tree(fields.with_items, f"{where}: with_items")
    elif fields.concurrency is not None:
        raise ValidationFailed(f"{where}: concurrency limits with_items; this action has no with_items")


def _runner_hint(data: Mapping[str, Any]) -> str:
    runner = data.get("runner_type")
    if isinstance(runner, str) and runner in ST2_RUNNERS:
        return f" (StackStorm's '{runner}' is '{ST2_RUNNERS[runner]}' here)"
    return ""


def _is_action_file(path: str) -> bool:
    p = PurePosixPath(path)
    return str(p.parent) == ACTIONS_DIR and p.suffix in (".yaml", ".yml")


def _workflow_from_file(path: str, fields: ActionFields, files: Files) -> ActionFields:
    # st2 keeps workflow definitions in files (`entry_point: workflows/x.yaml`);
    # the definition is read once, here, so the API can show and compile it.
    if fields.runner_type != "workflow" or fields.workflow is not None or fields.entry_point is None:
        return fields
    source = workflow_path(fields.entry_point, files)
    if source not in files:
        return fields
    definition = load_yaml(source, files[source])
    if not isinstance(definition, dict):
        raise ValidationFailed(f"{source}: a workflow definition must be a mapping, in {path}")
    return fields.model_copy(update={"workflow": definition})


def parse_actions(pack_ref: str, files: Files) -> list[ActionDef]:
    """Every `actions/*.yaml` of the pack as an action; the first bad file refuses them all."""
    found: dict[str, ActionDef] = {}
    for path in sorted(p for p in files if _is_action_file(p)):
        data = load_yaml(path, files[path])
        if not isinstance(data, dict):
            raise ValidationFailed(
                f"{path}: expected a mapping of action fields, got {type(data).__name__}"
            )
        name = data.pop("name", PurePosixPath(path).stem)
        if not isinstance(name, str) or not re.fullmatch(ACTION_NAME_PATTERN, name):
            raise ValidationFailed(
                f"{path}: action name {name!r} is invalid: letters, digits, '_' and '-', "
                "starting with a letter or digit"
            )
        pack = data.pop("pack", pack_ref)
        if pack != pack_ref:
            raise ValidationFailed(f"{path}: pack {pack!r} does not match the pack's ref {pack_ref!r}")
        if name in found:
            raise ValidationFailed(f"{path}: action {name!r} is already defined by {found[name].source}")
        try:
            fields = ActionFields.model_validate(data)
        except ValidationError as exc:
            raise ValidationFailed(f"{path}: {describe(exc)}{_runner_hint(data)}") from exc
        fields = _workflow_from_file(path, fields, files)
        check_action(fields, files.keys(), where=path)
        found[name] = ActionDef(name=name, ref=f"{pack_ref}.{name}", source=path, fields=fields)
    return list(found.values())


@dataclass(frozen=True)
class SensorDef:
    """A sensor read from a pack's `sensors/<file>.yaml`; `path` is its Python file in the pack."""

    name: str
    ref: str
    source: str
    path: str
    fields: SensorFields


def _defines_class(path: str, raw: bytes, class_name: str) -> bool:
    try:
        tree = ast.parse(raw, filename=path)
    except (SyntaxError, ValueError) as exc:
        raise ValidationFailed(f"{path}: not valid Python: {exc}") from exc
    return any(isinstance(node, ast.ClassDef) and node.name == class_name for node in tree.body)


def parse_sensors(pack_ref: str, files: Files) -> list[SensorDef]:
    """Every `sensors/*.yaml` of the pack as a sensor whose class its Python file defines; the first bad file
    refuses them all (a 400 naming it)."""
    found: dict[str, SensorDef] = {}
    for path in sorted(p for p in files if PurePosixPath(p).parent == PurePosixPath(SENSORS_DIR)
                       and PurePosixPath(p).suffix in (".yaml", ".yml")):
        data = load_yaml(path, files[path])
        if not isinstance(data, dict):
            raise ValidationFailed(f"{path}: expected a mapping of sensor fields, got {type(data).__name__}")
        name = data.pop("name", PurePosixPath(path).stem)
        if not isinstance(name, str) or not re.fullmatch(SENSOR_NAME_PATTERN, name):
            raise ValidationFailed(f"{path}: sensor name {name!r} is invalid: letters, digits, '_' and '-'")
        if data.pop("pack", pack_ref) != pack_ref:
            raise ValidationFailed(f"{path}: pack does not match the pack's ref {pack_ref!r}")
        if name in found:
            raise ValidationFailed(f"{path}: sensor {name!r} is already defined by {found[name].source}")
        try:
            fields = SensorFields.model_validate(data)
        except ValidationError as exc:
            raise ValidationFailed(f"{path}: {describe(exc)}") from exc
        try:
            code = entry_point_path(fields.entry_point, SENSORS_DIR)
        except ValidationFailed as exc:
            raise ValidationFailed(f"{path}: entry_point: {exc.message}") from exc
        if code not in files or PurePosixPath(code).suffix != ".py":
            raise ValidationFailed(f"{path}: entry_point {fields.entry_point!r} must name a Python file of the pack "
                                   f"(no {code!r}; write it from the pack root, '{SENSORS_DIR}/x.py', or from "
                                   f"{SENSORS_DIR}/, 'x.py')")
        if not _defines_class(code, files[code], fields.class_name):
            raise ValidationFailed(f"{path}: {code} defines no top-level class {fields.class_name!r}")
        found[name] = SensorDef(name=name, ref=f"{pack_ref}.{name}", source=path, path=code, fields=fields)
    return list(found.values())


def dump_parameters(parameters: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """Parameters as stored and shown: what the author declared, nothing added."""
    return {name: spec.model_dump(exclude_unset=True) for name, spec in parameters.items()}


def parse_parameters(raw: Mapping[str, Any]) -> dict[str, ParamSpec]:
    """Validate a stored or submitted parameter map."""
    try:
        return _PARAMETERS.validate_python(dict(raw))
    except ValidationError as exc:
        raise ValidationFailed(f"parameters: {describe(exc)}") from exc


def parameters_schema(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema that execution parameters are validated against.

    Unknown parameters are refused (as StackStorm does: a typo must not pass
    silently); a required parameter with a default is not listed as required,
    since the default satisfies it.
    """
    if all(isinstance(spec, ParamSpec) for spec in parameters.values()):
        specs: Mapping[str, ParamSpec] = parameters
    else:
        specs = parse_parameters(parameters)
    props = {name: spec.property_schema() for name, spec in specs.items()}
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": props,
        "additionalProperties": False,
    }
    required = [n for n, s in specs.items() if s.required and not s.has_default()]
    if required:
        schema["required"] = required
    return schema


def apply_defaults(parameters: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters an execution runs with: the given ones plus declared defaults."""
    out = dict(given)
    for name, spec in parse_parameters(parameters).items():
        if name not in out and spec.has_default():
            out[name] = spec.default
    return out


def secret_names(parameters: Mapping[str, Any]) -> list[str]:
    """Parameters to mask in results and logs."""
    return sorted(name for name, spec in parse_parameters(parameters).items() if spec.secret)

"""Bodies of the pack and action endpoints, and the pack manifest and action YAML shapes.

One set of action fields serves the API body and the `actions/*.yaml` file,
so an action registered either way obeys the same rules. Each parameter
declaration checks itself (type known, default and enum values of that
type) when it is parsed, so a broken declaration is refused where it is
written rather than when an execution trips over it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import AliasChoices, Field, field_validator, model_validator

from chalicelib.core.versions import SEMVER_PATTERN
from chalicelib.models.base import Contract

PACK_REF_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
ACTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
ACTION_REF_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}\.[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
PARAM_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"

PARAM_TYPES = ("string", "integer", "number", "boolean", "array", "object")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

PackRef = Annotated[str, Field(pattern=PACK_REF_PATTERN)]
SemVer = Annotated[str, Field(pattern=SEMVER_PATTERN, max_length=64)]
ActionName = Annotated[str, Field(pattern=ACTION_NAME_PATTERN)]
ActionRef = Annotated[str, Field(pattern=ACTION_REF_PATTERN)]
ParamName = Annotated[str, Field(pattern=PARAM_NAME_PATTERN)]
# Must list exactly core.runners.RUNNER_TYPES (a unit test holds them together).
RunnerType = Literal["python3", "shell", "node", "http", "container", "workflow", "inquiry"]
ParamType = Literal["string", "integer", "number", "boolean", "array", "object"]
Label = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=4096)]
RelPath = Annotated[str, Field(min_length=1, max_length=512)]
# An archive is base64 text; its decoded size is checked against
# settings().max_archive_bytes where the limit is known.
Archive = Annotated[str, Field(min_length=1)]
FileMap = dict[Annotated[str, Field(min_length=1, max_length=512)], str]
Timeout = Annotated[int, Field(gt=0, le=7 * 24 * 3600)]


class ParamSpec(Contract):
    """One declared action parameter (`{"type","required","default","secret","enum",...}`)."""

    type: ParamType | None = None
    description: Description | None = None
    required: bool = False
    default: Any = None
    secret: bool = False
    enum: Annotated[list[Any], Field(min_length=1, max_length=1000)] | None = None
    immutable: bool = False
    pattern: Annotated[str, Field(max_length=1024)] | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    items: dict[str, Any] | None = None

    def has_default(self) -> bool:
        """Whether a default was declared (`default: null` counts: null is a value)."""
        return "default" in self.model_fields_set

    def property_schema(self) -> dict[str, Any]:
        """This parameter as a JSON Schema property."""
        schema: dict[str, Any] = {}
        if self.type is not None:
            schema["type"] = self.type
        for key in ("description", "enum", "pattern", "minimum", "maximum", "items"):
            value = getattr(self, key)
            if value is not None:
                schema[key] = value
        if self.has_default():
            schema["default"] = self.default
            if self.immutable:
                schema["const"] = self.default
        if self.secret:
            schema["writeOnly"] = True
        return schema

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.immutable and not self.has_default():
            raise ValueError("an immutable parameter needs a default (it is the only value allowed)")
        if self.items is not None and self.type not in (None, "array"):
            raise ValueError(f"'items' applies to arrays, but the type is {self.type!r}")
        if self.pattern is not None and self.type not in (None, "string"):
            raise ValueError(f"'pattern' applies to strings, but the type is {self.type!r}")
        bounds = (self.minimum, self.maximum)
        if any(b is not None for b in bounds) and self.type not in (None, "integer", "number"):
            raise ValueError(f"'minimum'/'maximum' apply to numbers, but the type is {self.type!r}")
        schema = self.property_schema()
        schema.pop("default", None)
        schema.pop("const", None)
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"invalid schema: {exc.message}") from exc
        checker = Draft202012Validator(schema)
        for value in self.enum or []:
            problem = next(iter(checker.iter_errors(value)), None)
            if problem is not None and problem.validator != "enum":
                raise ValueError(f"enum value {value!r} is invalid: {problem.message}")
        if self.has_default():
            problem = next(iter(checker.iter_errors(self.default)), None)
            if problem is not None:
                raise ValueError(f"default {self.default!r} is invalid: {problem.message}")
        return self


Parameters = dict[ParamName, ParamSpec]


class HttpConfig(Contract):
    """How the http runner builds its request; strings may be Jinja templates over `params`."""

    url: Annotated[str, Field(min_length=1, max_length=4096)]
    method: str = "GET"
    headers: dict[str, str] | str = Field(default_factory=dict)
    body: Any = None
    # `verify_tls` (the and StackStorm's word) is accepted as well.
    verify_ssl: bool = Field(True, validation_alias=AliasChoices("verify_ssl", "verify_tls"))
    timeout: Timeout | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "{{" in value or value.startswith(("http://", "https://")):
            return value
        raise ValueError(f"url must start with http:// or https:// (or be a template), got {value!r}")

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if "{{" in value:
            return value
        if value.upper() not in HTTP_METHODS:
            raise ValueError(f"method must be one of {', '.join(HTTP_METHODS)}, got {value!r}")
        return value.upper()


class RetryPolicy(Contract):
    """Retries of a failed execution, with exponential backoff."""

    max_attempts: Annotated[int, Field(ge=0, le=100)] = 3
    delay_seconds: Annotated[float, Field(ge=0, le=86400)] = 1.0
    backoff_multiplier: Annotated[float, Field(ge=1, le=100)] = 2.0
    max_delay_seconds: Annotated[float, Field(ge=0, le=86400)] = 300.0
    # What is retried: a failure (non-zero exit, error, lost worker) and/or a timeout.
    on: Annotated[list[Literal["failure", "timeout"]], Field(min_length=1)] = ["failure", "timeout"]


# A with_items task's (or action's) parallelism: a count, or "unlimited" (all at once).
Concurrency = Annotated[int, Field(ge=1, le=10_000)] | Literal["unlimited"]


def concurrency_limit(value: int | str | None) -> int | None:
    """Step Functions' MaxConcurrency for `concurrency`: 0 is unlimited; None when not given."""
    if value is None:
        return None
    return 0 if value == "unlimited" else int(value)


class ActionFields(Contract):
    """What defines an action, whichever way it is registered (API body or `actions/<name>.yaml`, where
    `name` defaults to the file name and `pack` must be the pack's ref)."""

    description: Description | None = None
    runner_type: RunnerType
    entry_point: RelPath | None = None
    parameters: Parameters = Field(default_factory=dict)
    code: Annotated[str, Field(min_length=1, max_length=1024 * 1024)] | None = None
    timeout: Timeout | None = None
    retry: RetryPolicy | None = None
    http_config: HttpConfig | None = None
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    workflow: dict[str, Any] | None = None
    # The seed's action-level iteration (T1.5): one child execution of this action per item.
    with_items: Annotated[str, Field(min_length=1, max_length=10_000)] | list[Any] | None = None
    concurrency: Concurrency | None = None
    enabled: bool = True

    @field_validator("parameters", mode="before")
    @classmethod
    def _not_a_json_schema(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("type") == "object" and "properties" in value:
            raise ValueError(
                "parameters maps each parameter name to its spec ({'name': {'type': ...}}); "
                "this looks like a JSON Schema: list its properties directly"
            )
        return value


class ActionCreate(ActionFields):
    """`POST /api/v1/actions`."""

    ref: ActionRef
    pack: PackRef | None = None


class ActionReplace(ActionFields):
    """`PUT /api/v1/actions/{id}`: the whole definition; `ref`/`pack` may be echoed, not changed."""

    ref: ActionRef | None = None
    pack: PackRef | None = None


class ActionPatch(Contract):
    """`PATCH /api/v1/actions/{id}`: only the fields given change; null clears a field."""

    ref: ActionRef | None = None
    pack: PackRef | None = None
    description: Description | None = None
    runner_type: RunnerType | None = None
    entry_point: RelPath | None = None
    parameters: Parameters | None = None
    code: Annotated[str, Field(min_length=1, max_length=1024 * 1024)] | None = None
    timeout: Timeout | None = None
    retry: RetryPolicy | None = None
    http_config: HttpConfig | None = None
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    workflow: dict[str, Any] | None = None
    with_items: Annotated[str, Field(min_length=1, max_length=10_000)] | list[Any] | None = None
    concurrency: Concurrency | None = None
    enabled: bool | None = None


class PackManifest(Contract):
    """`pack.yaml`: our fields plus StackStorm's descriptive ones, so st2 manifests load."""

    ref: PackRef | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    version: SemVer | None = None
    label: Label | None = None
    description: Description | None = None
    author: str | None = None
    email: str | None = None
    url: str | None = None
    keywords: list[str] | None = None
    contributors: list[str] | None = None
    python_versions: list[str] | None = None
    stackstorm_version: str | None = None
    dependencies: list[str] | None = None


class _PackSource(Contract):
    files: FileMap | None = None
    archive: Archive | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _PackSource:
        if self.files is not None and self.archive is not None:
            raise ValueError("give the pack's files either inline ('files') or as 'archive', not both")
        return self


class PackCreate(_PackSource):
    """`POST /api/v1/packs`; `ref`/`version` may come from the files' `pack.yaml` instead."""

    ref: PackRef | None = None
    version: SemVer | None = None
    label: Label | None = None
    description: Description | None = None


class PackReload(_PackSource):
    """`POST /api/v1/packs/{id}/reload`: new files and/or version, or re-read the stored ones."""

    version: SemVer | None = None
    label: Label | None = None
    description: Description | None = None

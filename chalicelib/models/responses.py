"""The bodies the API answers with: one model per resource, the source of the OpenAPI response schemas.

Views render rows with `serialize.pick` over the db layer's field tuples;
these models describe the result. They cannot drift silently: unknown fields
are refused (`additionalProperties: false` in the document), a unit test
checks each model against the field tuple it renders, and the schemathesis
conformance test validates real responses of the running API against them.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

RunnerType = Literal["python3", "shell", "node", "http", "container", "workflow", "inquiry"]
TriggerType = Literal["webhook", "interval", "date", "cron", "sensor"]
ExecutionStatus = Literal[
    "requested", "scheduled", "running", "paused", "canceling", "succeeded", "succeeded_with_errors", "failed",
    "canceled",
]
EnforcementStatus = Literal["created", "scheduled", "succeeded", "succeeded_with_errors", "failed", "canceled"]
EventStatus = Literal["accepted", "suppressed"]
InquiryStatus = Literal["pending", "responded", "expired"]
RoleName = Literal["admin", "editor", "executor", "viewer"]
T = TypeVar("T", bound=BaseModel)


class Body(BaseModel):
    """A response body: every field it may carry is declared, so an undeclared one is a conformance failure."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Listing(Body, Generic[T]):
    """The list contract: one page of items, the total matching and the window asked for."""

    items: list[T]
    total: int
    limit: int
    offset: int


class Deleted(Body):
    """What a delete answers: the id of what is gone."""

    deleted: int


class DeletedKey(Body):
    """What a datastore delete answers: the key that is gone."""

    deleted: str


class User(Body):
    """A user of the tenant."""

    id: int
    username: str
    tenant_id: int
    role: RoleName
    created: AwareDatetime


class TokenPair(Body):
    """A login's or a refresh's answer: a short-lived access token and a one-use refresh token."""

    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds until the access token expires.")


class Pack(Body):
    """A pack; `files` only when one pack is asked for."""

    id: int
    ref: str
    version: str
    label: str | None
    description: str | None
    created: AwareDatetime
    updated: AwareDatetime
    system: bool = Field(description="A platform pack shared by every tenant (read-only).")
    actions: list[str] = Field(description="Refs of the pack's actions.")
    files: list[str] | None = Field(default=None, description="Paths of the pack's files.")


class PackReloaded(Pack):
    """A reload's answer: the pack as it is now and the actions it added, changed and removed."""

    changes: dict[str, list[str]]


class Action(Body):
    """An action; `code` only when one action is asked for."""

    id: int
    ref: str
    pack: str
    name: str
    description: str | None
    runner_type: RunnerType
    entry_point: str | None
    parameters: dict[str, Any]
    timeout: int | None
    retry: dict[str, Any] | None
    http_config: dict[str, Any] | None
    image: str | None
    workflow: dict[str, Any] | None
    with_items: Any
    concurrency: int | None
    enabled: bool
    system: bool
    created: AwareDatetime
    updated: AwareDatetime
    code: str | None = None


class Trigger(Body):
    """A trigger; a webhook's carries the URL to POST events to and whether it requires signatures."""

    id: int
    ref: str | None
    type: TriggerType
    description: str | None
    parameters: dict[str, Any]
    enabled: bool
    state: dict[str, Any]
    created: AwareDatetime
    updated: AwareDatetime
    webhook_url: str | None = None
    hmac: bool | None = None


class Rule(Body):
    """A rule: trigger -> criteria -> action with templated parameters."""

    id: int
    ref: str
    description: str | None
    trigger_id: int
    action_ref: str
    criteria: str | None
    parameters: dict[str, Any]
    enabled: bool
    notify_on_trigger: bool
    created: AwareDatetime
    updated: AwareDatetime


class Event(Body):
    """An event a trigger fired, with its chain (trace, depth) and whether rules were evaluated."""

    id: int
    trigger_id: int
    payload: Any
    created: AwareDatetime
    trace: str
    depth: int
    status: EventStatus
    reason: str | None
    source_execution_id: int | None


class EventAccepted(Body):
    """An emit's answer (202): the new event's id, status and chain."""

    event_id: int
    status: EventStatus
    trace: str
    depth: int
    reason: str | None = None


class WebhookAccepted(Body):
    """A webhook's answer (202): the stored event's id."""

    event_id: int


class Enforcement(Body):
    """A rule's match of one event."""

    id: int
    rule_id: int
    event_id: int
    trigger_id: int
    status: EnforcementStatus
    error: str | None
    created: AwareDatetime
    updated: AwareDatetime


class TaskState(Body):
    """Where one task of a workflow execution is."""

    name: str
    status: ExecutionStatus | Literal["pending"]
    executions: list[int]


class Execution(Body):
    """An execution; a workflow's, asked for by id, also says where each task is."""

    id: int
    action_ref: str
    status: ExecutionStatus
    parameters: dict[str, Any]
    result: Any
    parent_execution_id: int | None
    enforcement_id: int | None
    retry_count: int
    attempts: list[Any]
    task_name: str | None
    item_index: int | None
    trace: str
    depth: int
    created: AwareDatetime
    updated: AwareDatetime
    started: AwareDatetime | None
    finished: AwareDatetime | None
    tasks: list[TaskState] | None = None


class Inquiry(Body):
    """A question to humans, and its answer once given."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: int
    execution_id: int
    workflow_execution_id: int | None
    status: InquiryStatus
    prompt: str | None
    schema_: dict[str, Any] = Field(alias="schema", description="JSON schema the response must satisfy.")
    roles: list[str]
    timeout_at: AwareDatetime | None
    response: Any
    responded_by: str | None
    responded_at: AwareDatetime | None
    created: AwareDatetime


class DatastoreItem(Body):
    """A datastore item; an encrypted one's value is the plaintext or a mask, never ciphertext."""

    key: str
    value: Any
    encrypted: bool
    expires_at: AwareDatetime | None
    created: AwareDatetime
    updated: AwareDatetime


class AuditEntry(Body):
    """Who did what to which entity, and when."""

    id: int
    at: AwareDatetime
    actor: str
    action: str
    entity_type: str
    entity_id: str | None
    detail: dict[str, Any]


class Sensor(Body):
    """A sensor and what its polls did."""

    id: int
    ref: str
    name: str
    description: str | None
    pack_id: int
    trigger_id: int
    entry_point: str
    class_name: str
    poll_interval: int
    timeout: int | None
    enabled: bool
    last_poll_at: AwareDatetime | None
    last_poll_status: Literal["succeeded", "failed", "timed_out"] | None
    last_error: str | None
    last_error_at: AwareDatetime | None
    polls: int
    failures: int
    events_emitted: int
    created: AwareDatetime
    updated: AwareDatetime


class SensorDetail(Sensor):
    """One sensor with the state its last successful poll returned."""

    state: Any


class RoleHealth(Body):
    """One expected role: ready with its live instances, or down."""

    status: Literal["ready", "down"]
    instances: int | None = None


class Health(Body):
    """`/health`: ok (200), starting or unavailable (503)."""

    status: Literal["ok", "starting", "unavailable"]
    roles: dict[str, RoleHealth] | None = None
    sandbox: bool | None = None
    error: str | None = None


# Named pages (`ActionList`, not `Listing[Action]`): the names generated clients give these types.


class ActionList(Listing[Action]):
    """A page of Action items."""


class AuditEntryList(Listing[AuditEntry]):
    """A page of AuditEntry items."""


class DatastoreItemList(Listing[DatastoreItem]):
    """A page of DatastoreItem items."""


class EnforcementList(Listing[Enforcement]):
    """A page of Enforcement items."""


class EventList(Listing[Event]):
    """A page of Event items."""


class ExecutionList(Listing[Execution]):
    """A page of Execution items."""


class InquiryList(Listing[Inquiry]):
    """A page of Inquiry items."""


class PackList(Listing[Pack]):
    """A page of Pack items."""


class RuleList(Listing[Rule]):
    """A page of Rule items."""


class SensorList(Listing[Sensor]):
    """A page of Sensor items."""


class TriggerList(Listing[Trigger]):
    """A page of Trigger items."""


class UserList(Listing[User]):
    """A page of User items."""

"""The one decorator every endpoint goes through.

It authenticates (401), takes a token from the caller's rate-limit bucket
(429; admins are exempt), loads the caller inside a tenant transaction,
checks the role's permission before anything else is read (403), parses and
validates the body (400/413), runs the view, and turns every error into the
contract body `{"error": {"code", "message"}}` (with `Retry-After` on a 429
or 503 that knows when to come back). Chalice swallows non-Chalice
exceptions into its own 500 body, so the translation has to live here, at
the view boundary, rather than in a middleware.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import jwt
from chalice import Chalice, Response
from chalice.app import Request
from pydantic import BaseModel, ValidationError

from chalicelib.aws.secrets import jwt_signing_key
from chalicelib.config import settings
from chalicelib.core import jsondoc
from chalicelib.core.auth import (
    ActionClaims,
    Claims,
    Permission,
    Role,
    allowed,
    denial_message,
    verify_action_token,
    verify_token,
)
from chalicelib.core.errors import (
    AttuneError,
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    Unauthorized,
)
from chalicelib.db import ratelimits
from chalicelib.db.executions import is_running
from chalicelib.db.pool import Cursor, tenant_tx
from chalicelib.db.users import load_principal

if TYPE_CHECKING:
    from chalicelib.api.params import QueryParam

log = logging.getLogger("attune.api")
M = TypeVar("M", bound=BaseModel)

_app: Chalice | None = None


def bind(app: Chalice) -> None:
    """Tell the endpoints which app's `current_request` to read."""
    global _app
    _app = app


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: int
    tenant_id: int
    username: str
    role: Role

    execution_id: int | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller: a user, or the running execution whose action calls."""
        if self.execution_id is not None:
            return f"execution:{self.execution_id}"
        return f"user:{self.username}"


@dataclass
class Call:
    """What a view gets: the request, the caller, its transaction and the parsed body."""

    request: Request
    principal: Principal
    cur: Cursor
    body: Any = None
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    declared: frozenset[str] = frozenset()

    def query(self, name: str) -> str | None:
        """A query-string parameter, or None.

        Only the names the view declared (`endpoint(query=...)`) may be read:
        the declaration is what the OpenAPI document lists, so reading an
        undeclared one is a programming error, not the caller's.
        """
        if name not in self.declared:
            raise RuntimeError(f"query parameter {name!r} is read but not declared in the view's endpoint(query=...)")
        params = self.request.query_params
        return None if params is None else params.get(name)


@dataclass
class PublicCall:
    """What a public (unauthenticated) view gets."""

    request: Request
    body: Any = None


def error_response(exc: AttuneError, headers: dict[str, str | list[str]] | None = None) -> Response:
    """The error contract as a Chalice response; a refusal that knows when to come back says so in `Retry-After`."""
    retry_after = getattr(exc, "retry_after", None)
    extra: dict[str, str | list[str]] = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return Response(body=exc.to_body(), status_code=exc.status, headers={**extra, **(headers or {})})


def client_address(request: Request) -> str | None:
    """The caller's address as API Gateway saw it (`requestContext.identity.sourceIp`), never a header.

    `X-Forwarded-For` is whatever the client wrote, so a limiter keyed on it
    would be a limiter the client chooses its own key for.
    """
    identity = (request.context or {}).get("identity") or {}
    address = identity.get("sourceIp")
    return str(address) if address else None


def _request() -> Request:
    if _app is None or _app.current_request is None:
        raise RuntimeError("api.context.bind(app) was not called")
    return _app.current_request


def _describe_validation(exc: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        details.append({"field": loc, "problem": err["msg"]})
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details[:5])
    return f"invalid request body: {summary}", details


def parse_body(request: Request, model: type[M], max_bytes: int | None = None) -> M:
    """Parse and validate a JSON body; every failure names the problem."""
    raw = request.raw_body or b""
    limit = max_bytes or settings().max_body_bytes
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body is {len(raw)} bytes; the limit is {limit}")
    if not raw.strip():
        raise BadRequest("request body is empty; expected a JSON object")
    data = jsondoc.parse(raw)
    if not isinstance(data, dict):
        raise BadRequest(f"request body must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, details = _describe_validation(exc)
        raise BadRequest(message, details=details) from exc


def _bearer(request: Request) -> str:
    header: str | None = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing Authorization header: expected 'Bearer <access_token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <access_token>'")
    return token.strip()


def bearer_claims(request: Request) -> Claims:
    """Verify the `Authorization: Bearer` access token."""
    return verify_token(jwt_signing_key(), _bearer(request), token_type="access")


def _is_action_token(token: str) -> bool:
    try:
        return bool(jwt.decode(token, options={"verify_signature": False}).get("typ") == "action")
    except jwt.InvalidTokenError:
        return False


def _action_principal(cur: Cursor, claims: ActionClaims) -> Principal:
    if not is_running(cur, claims.tenant_id, claims.execution_id):
        raise Unauthorized("action token: the execution is not running")
    # An action acts for its tenant with an editor's reach, on the endpoints that admit actions.
    return Principal(
        user_id=0,
        tenant_id=claims.tenant_id,
        username=f"execution:{claims.execution_id}",
        role=Role.EDITOR,
        execution_id=claims.execution_id,
    )


def _load_principal(cur: Cursor, claims: Claims) -> Principal:
    row = load_principal(cur, claims.user_id, claims.tenant_id)
    if row is None:
        raise Unauthorized("invalid token: the user no longer exists")
    # The role is read from the database, not the token, so demotions take
    # effect at once rather than when the access token expires.
    return Principal(user_id=row["id"], tenant_id=row["tenant_id"], username=row["username"], role=Role(row["role"]))


def _user_bucket(key: str) -> ratelimits.Bucket:
    limit = settings().limits.user
    return ratelimits.Bucket(key, limit, f"rate limit of {limit.per_s:g} requests/s (burst {limit.burst}) exceeded")


def _respond(result: Any, status: int) -> Response:
    if isinstance(result, Response):
        return result
    return Response(body=result, status_code=status)


def _guard(run: Callable[[], Response]) -> Response:
    try:
        return run()
    except AttuneError as exc:
        if exc.status >= 500:
            log.error("request failed: %s", exc.message)
        return error_response(exc)
    except Exception:
        log.exception("unhandled error")
        return error_response(AttuneError("internal error; the failure was logged"))


def describe(
    permission: Permission | None,
    *,
    body: type[BaseModel] | None,
    status: int,
    query: Sequence[QueryParam] = (),
    response: type[BaseModel] | None = None,
    responses: Mapping[int, type[BaseModel]] | None = None,
    errors: Sequence[int] = (),
    body_required: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """The `__attune__` metadata of a view: what the OpenAPI document is generated from."""
    return {
        "permission": permission, "body": body, "status": status, "query": tuple(query), "response": response,
        "responses": dict(responses or {}), "errors": tuple(errors), "body_required": body_required, **extra,
    }


def endpoint(
    permission: Permission = Permission.READ,
    *,
    body: type[BaseModel] | None = None,
    status: int = 200,
    max_body: int | None = None,
    actions_may_call: bool = False,
    query: Sequence[QueryParam] = (),
    response: type[BaseModel] | None = None,
    responses: Mapping[int, type[BaseModel]] | None = None,
    errors: Sequence[int] = (),
    body_required: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
    """Decorate an authenticated view `fn(call, **path_params)`.

    `actions_may_call` also admits the token a worker gives a running action
    (the datastore endpoints: T1.6, T2.3). The rest is the view's contract,
    which the OpenAPI document is generated from: the query parameters it
    reads (`query`, the only ones `Call.query` admits), its success body
    (`response`, and `responses` for other statuses it answers), and the
    errors it raises beyond those every endpoint may (`errors`). A body with
    `body_required=False` may be left out (the view gets None).
    """
    declared = frozenset(p.name for p in query)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Response]:
        @wraps(fn)
        def view(**path: str) -> Response:
            def run() -> Response:
                request = _request()
                token = _bearer(request)
                load: Callable[[Cursor], Principal]
                bucket: str | None  # whose rate limit this call counts against; None: an admin's, exempt
                if actions_may_call and _is_action_token(token):
                    action_claims = verify_action_token(jwt_signing_key(), token)
                    tenant_id = action_claims.tenant_id
                    load = functools.partial(_action_principal, claims=action_claims)
                    bucket = f"execution:{action_claims.execution_id}"
                else:
                    claims = verify_token(jwt_signing_key(), token, token_type="access")
                    tenant_id = claims.tenant_id
                    load = functools.partial(_load_principal, claims=claims)
                    bucket = None if claims.role is Role.ADMIN else f"user:{claims.user_id}"
                if bucket is not None:
                    # Before, and apart from, the request's transaction: see chalicelib/db/ratelimits.py.
                    ratelimits.admit([_user_bucket(bucket)])
                with tenant_tx(tenant_id) as cur:
                    principal = load(cur)
                    if bucket is None and principal.role is not Role.ADMIN:
                        # The token said admin, the database no longer does: count it, in this transaction.
                        ratelimits.admit([_user_bucket(f"user:{principal.user_id}")], cur)
                    if not allowed(principal.role, permission):
                        raise Forbidden(denial_message(principal.role, permission))
                    parsed = _body(request, body, max_body, body_required)
                    call = Call(request, principal, cur, parsed, declared=declared)
                    result = fn(call, **path)
                # Committed: now the work that must not happen for a rolled-back change (queue sends).
                for hook in call.after_commit:
                    hook()
                return _respond(result, status)

            return _guard(run)

        view.__attune__ = describe(  # type: ignore[attr-defined]
            permission, body=body, status=status, query=query, response=response, responses=responses,
            errors=errors, body_required=body_required, actions_may_call=actions_may_call,
        )
        return view

    return decorate


def _body(request: Request, model: type[BaseModel] | None, max_bytes: int | None, required: bool) -> Any:
    if model is None:
        return None
    if not required and not (request.raw_body or b"").strip():
        return None
    return parse_body(request, model, max_bytes)


def public(
    *,
    body: type[BaseModel] | None = None,
    status: int = 200,
    response: type[BaseModel] | None = None,
    responses: Mapping[int, type[BaseModel]] | None = None,
    errors: Sequence[int] = (),
    raw_body: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
    """Decorate an unauthenticated view `fn(call, **path_params)` (login, register, webhooks).

    `response`, `responses` and `errors` are its contract, as for `endpoint`;
    `raw_body` is the JSON schema of a body the view reads itself (webhooks).
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Response]:
        @wraps(fn)
        def view(**path: str) -> Response:
            def run() -> Response:
                request = _request()
                parsed = parse_body(request, body) if body is not None else None
                return _respond(fn(PublicCall(request, parsed), **path), status)

            return _guard(run)

        view.__attune__ = describe(  # type: ignore[attr-defined]
            None, body=body, status=status, response=response, responses=responses, errors=errors,
            raw_body=raw_body,
        )
        return view

    return decorate


def accept_any_content_type(app: Chalice) -> None:
    """Let every route take its body whatever Content-Type the client sent.

    All bodies are JSON by contract, and `parse_body` reads the raw bytes as
    JSON, answering a clear 400 when they are not. Chalice would otherwise
    refuse anything not labelled `application/json` with a 415 before the
    view runs, and `curl -d '{...}'` labels its JSON
    `application/x-www-form-urlencoded` -- the first call a new user makes.
    Call it once every blueprint is registered (routes added later keep
    Chalice's default).
    """
    for methods in app.routes.values():
        for entry in methods.values():
            entry.content_types = ["*/*"]


CHALICE_ERROR_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "not_found",
    415: "unsupported_media_type",
}


def contract_errors(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Middleware: errors Chalice makes itself (405, its own 500) get our error contract too."""
    response = get_response(event)
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and {"Code", "Message"} <= set(body):
        status = response.status_code
        code = CHALICE_ERROR_CODES.get(status, "internal_error" if status >= 500 else "bad_request")
        message = str(body["Message"])
        response.body = {"error": {"code": code, "message": message}}
    return response

"""The WebSocket API's routes: who is connected, for which tenant, hearing what.

Each function takes the API Gateway WebSocket event and returns the
integration response, so that the Chalice handlers in app.py stay one line
and the local gateway (chalicelib/local/ws_gateway.py) runs exactly this.
`$connect` authenticates with the same access token and verification as the
REST API (the browser WebSocket API cannot send headers, hence `?token=`); a
connection, once open, lasts until it closes, as on API Gateway. Errors are
the REST API's contract: `{"error": {"code", "message"}}` with its status.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.aws.secrets import jwt_signing_key
from chalicelib.core.auth import Permission, Role, allowed, denial_message, verify_token
from chalicelib.core.errors import AttuneError, Forbidden, NotFound, Unauthorized
from chalicelib.db import notifications as db
from chalicelib.db.pool import system_tx, tenant_tx
from chalicelib.db.users import load_principal
from chalicelib.notifications.subscriptions import parse_message

log = logging.getLogger(__name__)

Response = dict[str, Any]


def _reply(status: int, body: Mapping[str, Any] | None = None) -> Response:
    out: Response = {"statusCode": status}
    if body is not None:
        out["body"] = json.dumps(body)
    return out


def _guard(route: str, run: Callable[[], Response]) -> Response:
    """Domain errors as their status and contract body; a bug is logged and answered 500."""
    try:
        return run()
    except AttuneError as exc:
        if exc.status >= 500:
            log.error("websocket %s failed: %s", route, exc.message)
        return _reply(exc.status, exc.to_body())
    except Exception:
        log.exception("websocket %s failed", route)
        return _reply(500, AttuneError("internal error; the failure was logged").to_body())


def _connection_id(event: Mapping[str, Any]) -> str:
    return str(event["requestContext"]["connectionId"])


def on_connect(event: Mapping[str, Any]) -> Response:
    """`$connect`: verify `?token=`, record the connection under the token's tenant and user."""

    def run() -> Response:
        token = (event.get("queryStringParameters") or {}).get("token")
        if not token:
            raise Unauthorized("missing access token: connect with ?token=<access_token>")
        claims = verify_token(jwt_signing_key(), str(token), token_type="access")
        with tenant_tx(claims.tenant_id) as cur:
            user = load_principal(cur, claims.user_id, claims.tenant_id)
            if user is None:
                raise Unauthorized("invalid token: the user no longer exists")
            role = Role(user["role"])
            if not allowed(role, Permission.READ):
                raise Forbidden(denial_message(role, Permission.READ))
            db.connect(cur, connection_id=_connection_id(event), tenant_id=claims.tenant_id, user_id=user["id"])
        return _reply(200)

    return _guard("$connect", run)


def on_disconnect(event: Mapping[str, Any]) -> Response:
    """`$disconnect`: forget the connection (API Gateway sends it at most once, maybe never: see delivery)."""

    def run() -> Response:
        with system_tx() as cur:
            db.disconnect(cur, _connection_id(event))
        return _reply(200)

    return _guard("$disconnect", run)


def on_message(event: Mapping[str, Any]) -> Response:
    """`subscribe` (and `$default`, which answers a clear 400 for anything else): narrow what is heard.

    A subscribe replaces the connection's previous one; the answer
    `{"action": "subscribed", "subscription": {...}}` tells the client from
    when on it applies.
    """

    def run() -> Response:
        request = parse_message(event.get("body"))
        stored = request.stored()
        with system_tx() as cur:
            if not db.subscribe(cur, _connection_id(event), stored):
                raise NotFound("this connection is not registered; reconnect")
        return _reply(200, {"action": "subscribed", "subscription": stored})

    return _guard("message", run)


def forget_every_connection() -> int:
    """Drop every recorded connection: the local gateway at start holds none (its sockets died with it)."""
    with system_tx() as cur:
        return db.forget_all(cur)

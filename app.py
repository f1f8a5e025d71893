"""The Attune API: routing only. Each resource lives in a `chalicelib.api` blueprint.

The WebSocket API's routes (docs/notifications.md) are here too, as Chalice
websocket handlers; `chalice package` deploys them behind the WebSocket API of
infra/template.yaml, and the local gateway (chalicelib/local/ws_gateway.py)
calls these same functions.
"""

from __future__ import annotations

from typing import Any

from chalice import Chalice
from chalice.app import WebsocketEvent

from chalicelib.api import (
    actions,
    audit,
    auth,
    context,
    datastore,
    events,
    executions,
    inquiries,
    packs,
    rules,
    sensors,
    system,
    triggers,
    webhooks,
)
from chalicelib.notifications import connections
from chalicelib.observability import configure_logging

configure_logging()
app = Chalice(app_name="attune", configure_logs=False)
app.experimental_feature_flags.update(["WEBSOCKETS"])  # `chalice package` deploys the websocket handlers only then
app.api.binary_types = []  # every body is JSON, packs travel as base64
context.bind(app)
app.register_middleware(context.contract_errors, "http")

for module in (system, auth, packs, actions, triggers, webhooks, rules, events, executions, inquiries,
               datastore, audit, sensors):
    app.register_blueprint(module.bp)
context.accept_any_content_type(app)  # curl -d labels JSON as a form; bodies are read as JSON


@app.on_ws_connect()
def ws_connect(event: WebsocketEvent) -> dict[str, Any]:
    """`$connect ?token=<access_token>`: 200 records the connection; 401/403 refuse it."""
    return connections.on_connect(event.to_dict())


@app.on_ws_message()
def ws_message(event: WebsocketEvent) -> dict[str, Any]:
    """`subscribe` and `$default`: `{"action": "subscribe", "events": [...], "entity_id"?}`."""
    return connections.on_message(event.to_dict())


@app.on_ws_disconnect()
def ws_disconnect(event: WebsocketEvent) -> dict[str, Any]:
    """`$disconnect`: the connection is forgotten."""
    return connections.on_disconnect(event.to_dict())

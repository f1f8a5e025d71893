"""The Attune API: routing only. Each resource lives in a `chalicelib.api` blueprint."""

from __future__ import annotations

from chalice import Chalice

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
    system,
    triggers,
    webhooks,
)
from chalicelib.observability import configure_logging

configure_logging()
app = Chalice(app_name="attune", configure_logs=False)
app.api.binary_types = []  # every body is JSON, packs travel as base64
context.bind(app)
app.register_middleware(context.contract_errors, "http")

for module in (system, auth, packs, actions, triggers, webhooks, rules, events, executions, inquiries,
               datastore, audit):
    app.register_blueprint(module.bp)
context.accept_any_content_type(app)  # curl -d labels JSON as a form; bodies are read as JSON

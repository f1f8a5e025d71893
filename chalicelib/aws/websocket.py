"""The WebSocket API's management endpoint (`@connections`): push a message to one client.

On AWS the endpoint is `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`
(the template hands it to the notifier as `ATTUNE_WS_ENDPOINT_URL`); locally it
is the gateway of `attune dev` (chalicelib/local/ws_gateway.py) on
`ATTUNE_WS_PORT`, which checks the same SigV4 signature with the platform's
key. boto3's errors end here: a gone client is an answer, not an error, and an
unreachable endpoint is `ServiceUnavailable`.
"""

from __future__ import annotations

import logging
import threading
from enum import StrEnum
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws.clients import ensure_local_credentials
from chalicelib.config import settings
from chalicelib.core.errors import ServiceUnavailable

log = logging.getLogger(__name__)

_lock = threading.Lock()
_client: Any = None
# Errors of one connection, not of the endpoint: the others still get the message.
REFUSED = frozenset({"ForbiddenException", "PayloadTooLargeException", "LimitExceededException",
                     "BadRequestException"})


class Posted(StrEnum):
    """What became of one post."""

    SENT = "sent"
    GONE = "gone"  # the client disconnected: forget the connection
    REFUSED = "refused"  # this connection would not take it (throttled, too large): skipped


def endpoint_url() -> str:
    """Where `@connections` is: `ATTUNE_WS_ENDPOINT_URL` (the deployed API's stage), else the local gateway."""
    cfg = settings()
    return cfg.ws_endpoint_url or f"http://{cfg.api_host}:{cfg.ws_port}"


def _management() -> Any:
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                ensure_local_credentials()
                _client = boto3.session.Session().client(
                    "apigatewaymanagementapi",
                    region_name=settings().aws_region,
                    endpoint_url=endpoint_url(),
                    config=Config(retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=16,
                                  connect_timeout=2, read_timeout=5),
                )
    return _client


def reset_client() -> None:
    """Forget the cached client (tests that move the endpoint)."""
    global _client
    with _lock:
        _client = None


def post(connection_id: str, data: bytes) -> Posted:
    """Send `data` to one connection."""
    try:
        _management().post_to_connection(ConnectionId=connection_id, Data=data)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "GoneException":
            return Posted.GONE
        if code in REFUSED:
            log.warning("connection %s refused a notification: %s", connection_id, code)
            return Posted.REFUSED
        raise ServiceUnavailable(f"WebSocket API: could not post to a connection: {exc}") from exc
    except BotoCoreError as exc:
        raise ServiceUnavailable(f"WebSocket API unreachable at {endpoint_url()}: {exc}") from exc
    return Posted.SENT

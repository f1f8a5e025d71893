"""moto's server as a child process of the local cloud, with Step Functions execution on.

A child process (not a thread) so that its werkzeug server, its global
backends and its own signal handling never mix with the supervisor's, and so
that `ps` shows exactly what runs. The child is this module run with
`python -m chalicelib.local.moto_server`: it starts moto's own `main()` plus a
watchdog that ends it if the parent dies without stopping it, so a killed
supervisor never leaves an emulator behind.

With `credentials` (what `attune dev` passes), the child enforces moto's IAM
authentication from its very first request (`INITIAL_NO_AUTH_ACTION_COUNT=0`):
the platform's IAM user and its access key are put straight into moto's IAM
backend before the server listens, so there is no unauthenticated window a
tenant's action could race, and made-up keys (`testing`/`testing`) or unsigned
requests are refused (403). moto's own admin API (`/moto-api/...`) needs no
credentials at all — it can switch authentication off (`reset-auth`), dump
every model (`data.json`) or wipe the state (`reset`) — so that path is refused
outright under authentication; the child configures itself in-process instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from chalicelib.local.moto_patches import (
    WsgiApp,
    bound_sqs_deleted_receipts,
    cache_moto_module_list,
    cache_response_method_names,
    cheap_random_strings,
    cheap_sqs_receive,
    count_calls,
    direct_sqs_json,
    fix_step_functions_callbacks,
    keep_alive_request_handler,
    lazy_kms_private_keys,
    prompt_sqs_long_polls,
    share_service_model_loader,
    track_model_instances_weakly,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 18082
HOST = "127.0.0.1"
SFN_CONFIG = {"stepfunctions": {"execute_state_machine": True}}
PLATFORM_USER = "attune-platform"
# What every role may do locally. One user for all roles: moto evaluates the policy, but the
# barrier that matters here is "no valid key, no access"; least privilege per role is what
# infra/template.yaml states for AWS (see infra/README.md).
PLATFORM_POLICY = {"Version": "2012-10-17",
                   "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
ADMIN_PATH_PREFIX = "moto-api"
_KEY_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


@dataclass(frozen=True)
class Credentials:
    """An access key of the platform's IAM user in the local moto (never `testing`/`testing`)."""

    access_key_id: str
    secret_access_key: str

    @classmethod
    def generate(cls) -> Credentials:
        """A fresh random key pair in AWS's shapes (AKIA + 16, and 40 characters)."""
        return cls(
            access_key_id="AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16)),
            secret_access_key="".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40)),
        )

    def env(self) -> dict[str, str]:
        """The environment variables botocore reads them from (the roles', never an action's)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}

    def __repr__(self) -> str:
        return f"Credentials(access_key_id={self.access_key_id!r}, secret_access_key=<hidden>)"


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether `port` can be bound now (checked before starting, for a clear error)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """A port the OS says is free, for a second cloud or a test's emulator."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def choose_port() -> int:
    """`ATTUNE_MOTO_PORT` if set (must be free), else 18082, else any free port."""
    raw = os.environ.get("ATTUNE_MOTO_PORT")
    if raw:
        port = int(raw)
        if not port_is_free(port):
            raise RuntimeError(f"ATTUNE_MOTO_PORT={port} is already in use")
        return port
    return DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()


def _answers(url: str) -> bool:
    """Whether moto serves HTTP yet (a 403 from the admin-API guard counts: it is up)."""
    try:
        with urllib.request.urlopen(f"{url}/moto-api/config", timeout=2):  # noqa: S310
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@dataclass
class MotoServer:
    """A running moto child; `stop()` ends it and waits for it."""

    port: int
    process: subprocess.Popen[bytes]
    credentials: Credentials | None = None

    @property
    def url(self) -> str:
        """The endpoint every boto3 client of the local cloud uses."""
        return f"http://{HOST}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (moto exits 0 on it), then SIGKILL if it hangs."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("moto did not stop in %.0fs; killing it", timeout)
            self.process.kill()
            self.process.wait(5)


def start(
    port: int | None = None,
    *,
    log_file: IO[bytes] | None = None,
    timeout: float = 30.0,
    state_dir: Path | None = None,
    kept_buckets: Sequence[str] = (),
    credentials: Credentials | None = None,
) -> MotoServer:
    """Start moto on `port` (see `choose_port`) with Step Functions execution on; wait until it answers.

    With `state_dir`, the KMS keys and the objects of `kept_buckets` survive
    restarts (see `moto_state`), so encrypted data in a persistent local database
    stays readable and the pack files it names stay downloadable.

    With `credentials`, moto accepts only requests signed with them (see the
    module docstring). The key travels on the child's stdin, not in its
    environment or argv, so neither `ps` nor the child's `/proc/<pid>/environ`
    shows it. Without, moto accepts anything: tests that run their own moto.
    """
    port = port or choose_port()
    env = dict(os.environ, MOTO_PORT=str(port))
    for var in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(var, None)
    if credentials is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    else:
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.local.moto_server",
         "--port", str(port), "--parent", str(os.getpid()),
         *(["--auth"] if credentials is not None else []),
         *(["--state-dir", str(state_dir)] if state_dir else []),
         *(arg for bucket in kept_buckets for arg in ("--keep-bucket", bucket))],
        env=env,
        stdin=subprocess.PIPE if credentials is not None else subprocess.DEVNULL,
        stdout=log_file or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if credentials is not None:
        assert process.stdin is not None
        process.stdin.write(json.dumps({"access_key_id": credentials.access_key_id,
                                        "secret_access_key": credentials.secret_access_key}).encode() + b"\n")
        process.stdin.close()
    server = MotoServer(port=port, process=process, credentials=credentials)
    deadline = time.monotonic() + timeout
    while not _answers(server.url):
        if process.poll() is not None:
            raise RuntimeError(f"moto exited with code {process.returncode} before answering")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"moto did not answer on port {port} within {timeout:.0f}s")
        time.sleep(0.05)
    return server


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def install_platform_user(credentials: Credentials, account_id: str | None = None) -> None:
    """Create the platform's IAM user, its allow-all policy and exactly this access key in moto.

    Straight into the in-process IAM backend (no HTTP, so no no-auth allowance
    is spent and nobody can race it); moto generates its own random keys, so
    the one it makes is re-keyed to the parent's, which the roles hold.
    """
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends

    backend = iam_backends[account_id or DEFAULT_ACCOUNT_ID]["aws"]
    if PLATFORM_USER not in backend.users:
        backend.create_user("us-east-1", PLATFORM_USER)
    backend.put_user_policy(PLATFORM_USER, "attune-platform-all", json.dumps(PLATFORM_POLICY))
    key = backend.create_access_key(PLATFORM_USER)
    backend.access_keys.pop(key.physical_resource_id, None)
    key.access_key_id = credentials.access_key_id
    key.secret_access_key = credentials.secret_access_key
    backend.access_keys[key.physical_resource_id] = key


def sign_step_functions_callbacks(credentials: Credentials) -> None:
    """Make moto's Step Functions sign their calls back to this server with the platform's key.

    moto's ASL interpreter calls services (our `sqs:sendMessage` tasks) through
    boto3 against `localhost:$MOTO_PORT` with the hard-coded key `ak`/`sk`,
    which authentication refuses. Its helper module's `boto3` is swapped for one
    whose `client()` supplies our key instead; everything else is untouched.
    """
    from moto.stepfunctions.parser.asl.utils import boto_client

    module = vars(boto_client)  # its `boto3` global, which the helper calls
    real = module["boto3"]

    class _SignedBoto3:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def client(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.update(aws_access_key_id=credentials.access_key_id,
                          aws_secret_access_key=credentials.secret_access_key)
            return real.client(*args, **kwargs)

    module["boto3"] = _SignedBoto3()


def verify_bodyless_requests_as_signed() -> None:
    """Check a GET/HEAD/DELETE's signature over the empty payload botocore actually signed.

    moto rebuilds the signed request from `body or data`; for some REST-JSON
    services (EventBridge Scheduler's GETs, measured: every `get_schedule`,
    `list_schedules`, `get_schedule_group` failed with SignatureDoesNotMatch
    under valid keys) `data` is the header dict, so it hashes a payload that
    was never sent. A request without a body has the empty payload.
    """
    from moto.iam.access_control import IAMRequestBase

    original = IAMRequestBase._create_aws_request
    if getattr(original, "_attune_bodyless", False):
        return

    def create(self: Any) -> Any:
        if self._method in ("GET", "HEAD", "DELETE") and not self._body:
            saved, self._data = self._data, b""
            try:
                return original(self)
            finally:
                self._data = saved
        return original(self)

    create._attune_bodyless = True  # type: ignore[attr-defined]
    IAMRequestBase._create_aws_request = create  # type: ignore[method-assign]




def refuse_unauthenticated(app: WsgiApp) -> WsgiApp:
    """`app` with moto's unauthenticated admin API (`/moto-api/...`) and unsigned requests answered 403.

    moto routes a request to its admin API when PATH_INFO starts with
    `/moto-api`; extra leading slashes are refused too, so no spelling of the
    path slips past. A request without an `Authorization` header would make
    moto's signature check fail with a 500 (it assumes the header) or, for S3,
    slip into anonymous handling; it is refused here with a clear 403 instead.
    (So presigned URLs, signed in the query string, do not work locally under
    authentication; nothing in the local cloud uses them.) Everything else goes
    to moto, which checks the signature against the IAM backend.
    """

    def refuse(start_response: Callable[..., Any], code: str, message: str) -> Iterable[bytes]:
        body = json.dumps({"__type": code, "message": message}).encode()
        start_response("403 Forbidden", [("Content-Type", "application/json"),
                                         ("Content-Length", str(len(body)))])
        return [body]

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if isinstance(path, bytes):
            path = path.decode("utf-8", "replace")
        if path.lstrip("/").lower().startswith(ADMIN_PATH_PREFIX):
            return refuse(start_response, "AccessDenied", "the moto admin API is disabled in the Attune local cloud")
        if not environ.get("HTTP_AUTHORIZATION"):
            return refuse(start_response, "MissingAuthenticationToken", "the request is not signed")
        return app(environ, start_response)

    return guarded


def _serve(port: int, *, auth: Credentials | None) -> None:
    """moto's `main()`, minus its argument parsing, plus the admin-API guard under auth."""
    from moto import settings as moto_settings
    from moto.moto_api._internal.models import moto_api_backend
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    moto_api_backend.set_config(SFN_CONFIG)  # in-process: the admin API may be closed
    # Else moto grows ~2 KB per execution, forever (measured: see moto_patches).
    track_model_instances_weakly()  # every model instance ever made (each SQS message and copy)
    bound_sqs_deleted_receipts()  # every deleted receipt handle
    fix_step_functions_callbacks()  # retried tasks get fresh tokens; failure causes are kept
    cheap_sqs_receive()  # a received message's retention check no longer scans its queue
    cheap_random_strings()  # request ids and receipt handles drawn in one call, not one per character
    prompt_sqs_long_polls()  # a delayed or timed-out message is handed out when due, not up to 1 s later
    cache_moto_module_list()  # no directory listing per request
    cache_response_method_names()  # no class introspection per request
    share_service_model_loader()  # botocore's service list read once, not per service model
    app: WsgiApp = direct_sqs_json(DomainDispatcherApplication(create_backend_app))  # SQS skips the dispatcher
    if auth is not None:
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        install_platform_user(auth)
        verify_bodyless_requests_as_signed()
        sign_step_functions_callbacks(auth)
        app = refuse_unauthenticated(app)

    def _exit(_signum: int, _frame: Any) -> None:
        sys.exit(0)

    signal.signal(signal.SIGINT, _exit)
    signal.signal(signal.SIGTERM, _exit)
    run_simple(HOST, port, app, threaded=True, request_handler=keep_alive_request_handler(MotoRequestHandler))


TRACEMALLOC_ENV = "ATTUNE_MOTO_TRACEMALLOC"
CALLS_FILE = "moto-calls.json"  # in the state dir: the API calls served so far, by service:action


def _trace_memory_if_asked() -> None:
    """Debugging hook (issue 10): `ATTUNE_MOTO_TRACEMALLOC=/tmp/moto-mem` traces moto's allocations.

    Off unless the variable is set (the child inherits the supervisor's
    environment, so `ATTUNE_MOTO_TRACEMALLOC=... attune dev` is enough). Each
    SIGUSR1 dumps a snapshot to `<prefix>-<n>.snap`, to compare offline with
    `tracemalloc.Snapshot.load(...).compare_to(...)`; that is how the holders
    patched in `moto_patches` were found. `ATTUNE_MOTO_TRACEMALLOC_FRAMES`
    (default 1) keeps deeper tracebacks, at a cost in speed. Tracing and
    snapshots inflate the child's RSS: measure RSS (bench/soak.py) untraced.
    """
    prefix = os.environ.get(TRACEMALLOC_ENV)
    if not prefix:
        return
    import gc
    import tracemalloc

    tracemalloc.start(int(os.environ.get(f"{TRACEMALLOC_ENV}_FRAMES", "1")))
    count = 0

    def dump(_signum: int, _frame: Any) -> None:
        nonlocal count
        count += 1
        gc.collect()  # cycles that would be freed anyway are not a leak
        path = f"{prefix}-{count}.snap"
        tracemalloc.take_snapshot().dump(path)
        log.warning("tracemalloc snapshot written to %s", path)

    signal.signal(signal.SIGUSR1, dump)


def main(argv: list[str] | None = None) -> None:
    """Child entry point: moto's server plus the parent watchdog."""
    _trace_memory_if_asked()
    parser = argparse.ArgumentParser(prog="python -m chalicelib.local.moto_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parent", type=int, default=0)
    parser.add_argument("--auth", action="store_true",
                        help="enforce IAM authentication; the platform's key is read as JSON from stdin")
    parser.add_argument("--state-dir", default=None,
                        help="keep KMS keys (and the --keep-bucket objects) across restarts in this folder")
    parser.add_argument("--keep-bucket", action="append", default=[],
                        help="mirror this S3 bucket's objects under --state-dir (repeatable)")
    args = parser.parse_args(argv)
    credentials = None
    if args.auth:
        given = json.loads(sys.stdin.readline())
        credentials = Credentials(str(given["access_key_id"]), str(given["secret_access_key"]))
    # One line per request (long polls included) would drown the useful output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if args.parent:
        threading.Thread(target=_watch_parent, args=(args.parent,), daemon=True).start()
    lazy_kms_private_keys()  # before the kept KMS keys are recreated: symmetric keys never use one
    if args.state_dir:
        from chalicelib.local import moto_state

        # Restored straight into moto's backends (no HTTP), so authentication never stands in the way.
        moto_state.keep(Path(args.state_dir) / "moto-kms.json")
        if args.keep_bucket:
            moto_state.keep_s3(Path(args.state_dir) / moto_state.S3_DIR_NAME, args.keep_bucket)
        dump_calls = count_calls(Path(args.state_dir) / CALLS_FILE)  # SIGUSR2 writes them (bench/peers.py)
        signal.signal(signal.SIGUSR2, lambda _signum, _frame: dump_calls())
    _serve(args.port, auth=credentials)


if __name__ == "__main__":
    main()

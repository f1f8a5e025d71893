"""`attune dev`: the whole local cloud, in the foreground, from one command.

Order matters and is fixed here: PostgreSQL and moto (in parallel; either is
skipped when ATTUNE_DATABASE_URL / AWS_ENDPOINT_URL point elsewhere), then
migrations, then the resources of infra/template.yaml, then the system packs,
then the role processes. It prints one ready line once `GET /health` answers
200, i.e. once every role beats. Ctrl-C or SIGTERM stops it all in reverse
order and exits 0; a second Ctrl-C skips the grace period.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import psycopg

from chalicelib.aws.clients import reset_clients
from chalicelib.aws.names import pack_bucket
from chalicelib.config import settings
from chalicelib.core.errors import AttuneError
from chalicelib.db.migrate import apply_migrations
from chalicelib.db.pool import close_pool
from chalicelib.local import embedded_pg, moto_server
from chalicelib.local.backends import EMULATOR, BackendWatch
from chalicelib.local.provision import provision
from chalicelib.local.role_template import RoleTemplate, role_env
from chalicelib.local.roles import ROLES
from chalicelib.local.supervisor import TEMPLATE_READY_WAIT_SECONDS, LogSink, Supervisor, write_cloud_file
from chalicelib.stopping import watch_signals

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
HEALTH_WARN_SECONDS = 60.0
# `<data_dir>/run/aws-credentials.json`: the platform's moto key, mode 0600, for the developer's
# own tools (`aws --endpoint-url`, `make bench`). The data dir is never bound into a sandbox.
CREDENTIALS_FILE = "aws-credentials.json"


def _write_private(path: Path, values: dict[str, str]) -> None:
    """Write `values` as JSON readable by this user only (created 0600, never world-readable)."""
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(values, fh)
    os.replace(tmp, path)


class SinkHandler(logging.Handler):
    """The supervisor's own log records, on the same prefixed stream as the roles'."""

    def __init__(self, sink: LogSink) -> None:
        super().__init__()
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record as an `attune |` line."""
        self._sink.line("attune", self.format(record))


def _configure_logging(sink: LogSink) -> None:
    handler = SinkHandler(sink)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(os.environ.get("ATTUNE_LOG_LEVEL", "INFO").upper())
    for noisy in ("botocore", "pgserver", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def _exclusive(run_dir: Path) -> Iterator[None]:
    """One `attune dev` per data dir: two would share (and stop) one PostgreSQL."""
    with (run_dir / "dev.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RuntimeError(f"another `attune dev` is using {run_dir.parent}; stop it or "
                               "set ATTUNE_DATA_DIR") from exc
        yield


def health_ok(url: str) -> bool:
    """Whether GET url answers 200 (anything else, or no answer, is not ready)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - local URL
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


SYSTEM_PACKS_TASK = "chalicelib.packs.bootstrap:load_system_packs"
SYSTEM_PACKS_TIMEOUT_S = 300.0


def bootstrap_system_data(template: RoleTemplate | None, sink: LogSink) -> None:
    """Register or update the system packs (`packs/*`) before any role serves; raises when that failed.

    In a child forked from the role template when it is ready: the pack code
    (pydantic models, jsonschema, Jinja) is imported there already, and the
    supervisor, which lives as long as the cloud, then never imports it
    (its PSS: 71.6 -> 59.8 MB). Without a template, here.
    """
    started = time.monotonic()
    if not _load_packs_in_template(template, sink):
        from chalicelib.packs.bootstrap import load_system_packs

        load_system_packs()
    log.info("system packs loaded in %.1fs", time.monotonic() - started)


def _load_packs_in_template(template: RoleTemplate | None, sink: LogSink) -> bool:
    """Run the pack load as a task of the template, its output in the log; False when no template can."""
    if template is None or not template.wait_ready(TEMPLATE_READY_WAIT_SECONDS):
        return False
    try:
        task = template.spawn("packs", role_env(os.environ), REPO_ROOT, call=SYSTEM_PACKS_TASK)
    except OSError as exc:
        log.warning("system packs: %s; loading them in the supervisor", exc)
        return False
    if task.stdout is not None:
        sink.pump("packs", task.stdout)  # until the task exits and its output closes
    code = task.wait(SYSTEM_PACKS_TIMEOUT_S)
    if code != 0:
        raise RuntimeError(f"loading the system packs failed (exit code {code}; its log says why)")
    return True


def _release_start_up_memory() -> None:
    """Give back what provisioning and the pack load left behind (their clients, parsed templates, models).

    The supervisor lives as long as the cloud but, after start-up, only
    watches processes: the boto3 clients it provisioned with and the garbage
    of the pack load are dropped, collected, and the freed heap handed back
    to the system (glibc keeps freed memory otherwise).
    """
    import ctypes
    import gc

    reset_clients()
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class LocalCloud:
    """The running pieces of one `attune dev`, so that shutdown finds all of them."""

    def __init__(self, sink: LogSink, template: RoleTemplate | None = None) -> None:
        self.sink = sink
        self.pg: embedded_pg.EmbeddedPostgres | None = None
        self.moto: moto_server.MotoServer | None = None
        self.supervisor: Supervisor | None = None
        self.template = template
        self.start_moto: Callable[..., moto_server.MotoServer] | None = None
        self.backends: BackendWatch | None = None
        self.shutdown = threading.Event()
        self.force = threading.Event()
        self.cloud_file: Path | None = None
        self.info: dict[str, Any] = {}

    def on_signal(self, signum: int) -> None:
        """First Ctrl-C/SIGTERM: graceful stop; second: no more grace."""
        if self.shutdown.is_set():
            self.force.set()
        self.shutdown.set()

    def start_backends(self, data_dir: Path) -> None:
        """PostgreSQL and moto, side by side, unless the environment names existing ones."""
        cfg = settings()
        with ThreadPoolExecutor(1) as pool:
            moto_log = (data_dir / "logs" / "moto.log").open("ab")
            # moto forgets everything on exit: keep the KMS keys and the pack files in the data
            # dir, so the persistent database's secrets and packs stay usable after a restart.
            # A fresh platform key every start (moto forgets its IAM users on exit); moto refuses
            # every other key, so tenant code that reaches its port gets nothing without it.
            credentials = moto_server.Credentials.generate()
            self.start_moto = functools.partial(
                moto_server.start, log_file=None, state_dir=data_dir, kept_buckets=[pack_bucket()],
                credentials=credentials)
            future = None if cfg.aws_endpoint_url else pool.submit(self.start_moto, None, log_file=moto_log)
            try:
                if not cfg.database_url:
                    self.pg = embedded_pg.start(data_dir)
                    os.environ["ATTUNE_DATABASE_URL"] = self.pg.url
            finally:
                if future is not None:
                    self.moto = future.result()
                moto_log.close()
        if self.moto is not None:
            log.info("moto on %s (Step Functions execution on; IAM authentication required, "
                     "platform key %s)", self.moto.url, credentials.access_key_id)
            os.environ["AWS_ENDPOINT_URL"] = self.moto.url
            # The roles inherit this environment: they, and only they, hold the key. The action
            # sandbox scrubs it from tenant code's environment.
            os.environ.update(credentials.env())
            for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
                os.environ.pop(var, None)
            _write_private(data_dir / "run" / CREDENTIALS_FILE, credentials.env())
        os.environ.setdefault("AWS_DEFAULT_REGION", cfg.aws_region)
        settings.cache_clear()
        reset_clients()

    def _restart_moto(self, port: int) -> moto_server.MotoServer:
        assert self.start_moto is not None
        with (Path(settings().data_dir) / "logs" / "moto.log").open("ab") as moto_log:
            return self.start_moto(port, log_file=moto_log)

    def _check_backends(self) -> None:
        """Restart a dead emulator or PostgreSQL; a failed restart is retried on the next turn."""
        assert self.backends is not None
        try:
            self.backends.check()
        except (RuntimeError, OSError, subprocess.SubprocessError, psycopg.Error, AttuneError) as exc:
            log.error("restarting a backend failed (%s); trying again", exc)
            return
        if self.backends.moto is not self.moto or self.backends.pg is not self.pg:
            self.moto, self.pg = self.backends.moto, self.backends.pg
            self.publish(moto_pid=self.moto.process.pid if self.moto else None,
                         postgres_pid=self.pg.pid if self.pg else None)

    def publish(self, **changes: Any) -> None:
        """Rewrite `<data_dir>/cloud.json` (what chalicelib/local/harness.py reads)."""
        self.info.update(changes)
        if self.cloud_file is not None:
            write_cloud_file(self.cloud_file, self.info)

    def stop(self) -> None:
        """Roles first (they still need the database), then moto, then PostgreSQL."""
        if self.supervisor is not None:
            self.sink.line("attune", "stopping roles...")
            self.supervisor.stop_all(self.force)
        if self.template is not None:
            self.template.stop()
        close_pool()
        if self.moto is not None:
            self.moto.stop()
        if self.pg is not None:
            self.pg.stop()
        if self.cloud_file is not None:
            self.cloud_file.unlink(missing_ok=True)
            (self.cloud_file.parent / "run" / CREDENTIALS_FILE).unlink(missing_ok=True)

    def run(self) -> int:
        """Bring everything up, serve until told to stop, bring everything down."""
        started = time.monotonic()
        cfg = settings()
        data_dir = Path(cfg.data_dir).resolve()
        run_dir = data_dir / "run"
        for folder in (run_dir, data_dir / "logs"):
            folder.mkdir(parents=True, exist_ok=True)
        os.environ["ATTUNE_DATA_DIR"] = str(data_dir)
        if not moto_server.port_is_free(cfg.api_port, cfg.api_host):
            log.error("port %s is in use: is another `attune dev` running? (ATTUNE_API_PORT "
                      "picks another)", cfg.api_port)
            return 1
        with _exclusive(run_dir):
            try:
                return self._serve(started, data_dir)
            finally:
                self.stop()
                self.sink.line("attune", "stopped")

    def _serve(self, started: float, data_dir: Path) -> int:
        # The roles' imports (a second of CPU each) overlap PostgreSQL's and moto's start-up
        # (`attune dev` starts the template even before it imports this module).
        if self.template is None or not self.template.alive():
            self.template = RoleTemplate(role_env(os.environ), REPO_ROOT)
        template = self.template
        self.start_backends(data_dir)
        if self.shutdown.is_set():
            return 0
        cfg = settings()
        assert cfg.database_url is not None
        applied = apply_migrations(cfg.database_url)
        log.info("backends up at +%.1fs; migrations: %s", time.monotonic() - started,
                 ", ".join(applied) if applied else "up to date")
        resources = provision(state_dir=data_dir)
        log.info("provisioned %d resources from infra/template.yaml at +%.1fs", len(resources),
                 time.monotonic() - started)
        try:
            bootstrap_system_data(template, self.sink)
        except Exception:  # a broken pack must not keep the cloud down; the log says why
            log.exception("loading the system packs failed")
        close_pool()
        _release_start_up_memory()
        if self.shutdown.is_set():
            return 0
        api_url = f"http://{cfg.api_host}:{cfg.api_port}"
        self.cloud_file = data_dir / "cloud.json"
        self.publish(supervisor_pid=os.getpid(), api_url=api_url,
                     ws_url=f"ws://{cfg.api_host}:{cfg.ws_port}", data_dir=str(data_dir),
                     database_url=cfg.database_url, aws_endpoint_url=cfg.aws_endpoint_url,
                     moto_pid=self.moto.process.pid if self.moto else None,
                     postgres_pid=self.pg.pid if self.pg else None, ready=False, roles={},
                     template_pid=template.process.pid)
        expected = [*ROLES, *([EMULATOR] if self.moto is not None else [])]
        env = role_env(dict(os.environ, ATTUNE_EXPECTED_ROLES=",".join(expected),
                             ATTUNE_API_URL=os.environ.get("ATTUNE_API_URL", api_url),
                             ATTUNE_OUTBOX_PUBLISH=os.environ.get("ATTUNE_OUTBOX_PUBLISH", "relay")))
        self.supervisor = Supervisor(list(ROLES.values()), env=env, cwd=REPO_ROOT,
                                     sink=self.sink, on_change=lambda pids: self.publish(roles=pids),
                                     template=template)
        self.supervisor.start_all()
        self.backends = BackendWatch(data_dir, self.moto, self.pg, restart_moto=self._restart_moto,
                                     reprovision=functools.partial(provision, state_dir=data_dir))
        ready, warned = False, False
        while not self.shutdown.is_set():
            self.supervisor.poll()
            self._check_backends()
            if not ready and health_ok(f"{api_url}/health"):
                ready = True
                self.publish(ready=True)
                self.sink.line("attune", f"ready in {time.monotonic() - started:.1f}s: API "
                                         f"{api_url} (roles: {', '.join(ROLES)}; Ctrl-C stops)")
            elif not ready and not warned and time.monotonic() - started > HEALTH_WARN_SECONDS:
                warned = True
                log.warning("GET %s/health is still not 200 after %.0fs", api_url,
                            HEALTH_WARN_SECONDS)
            self.shutdown.wait(0.2 if not ready else 0.5)
        return 0


def run_dev(out: IO[str] | None = None, template: RoleTemplate | None = None) -> int:
    """`attune dev`'s body; returns the exit code. `template`: a role template already importing."""
    sink = LogSink(out or sys.stdout, width=max(len("attune"), *(len(n) for n in ROLES)))
    _configure_logging(sink)
    cloud = LocalCloud(sink, template)
    watch_signals(cloud.on_signal)
    try:
        return cloud.run()
    except RuntimeError as exc:  # our own start-up failures carry a readable message
        log.error("%s", exc)
        return 1
    except Exception:  # anything else: the traceback, and a non-zero exit
        log.exception("the local cloud failed")
        return 1

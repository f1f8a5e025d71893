"""The worker: run the action of one scheduled execution per work message, at most once.

A message goes through two phases:

1. `accept`, on the queue handler's thread. Load the execution and its action;
   if it is no longer `scheduled` (a redelivery, a cancel), acknowledge and
   stop. Then do everything that can fail for infrastructure reasons (pack
   download, signing key) *before* the claim, so raising there retries the
   message with nothing changed. Take a slot, then claim in one transaction:
   `running` + outbox ack + audit `execution.started` (the load's own
   transaction when nothing needs fetching: the hot path's one round trip).
   From here the execution is ours and the message has done its job.
2. `_execute`, on the slot's thread: run the action under a heartbeat and
   record the result with a compare-and-set from `running` in one transaction
   with audit `execution.completed`. Failures after the claim are recorded on
   the execution, never retried by redelivery, so side effects happen at most
   once; if the worker dies, the reaper fails the execution.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chalicelib.aws import queues
from chalicelib.aws.secrets import jwt_signing_key
from chalicelib.config import WorkerSettings, worker_settings
from chalicelib.core import status
from chalicelib.core.auth import issue_action_token
from chalicelib.core.errors import AttuneError, NotFound, ServiceUnavailable, ValidationFailed
from chalicelib.core.packs import entry_point_path
from chalicelib.core.params import declared_secrets
from chalicelib.core.runners import ActionSpec, kind_of
from chalicelib.db import executions as executions_db
from chalicelib.db import outbox
from chalicelib.db.pool import system_tx
from chalicelib.executions import lifecycle, open_secrets
from chalicelib.models.messages import ExecutionMessage
from chalicelib.pipeline.outbox import publish
from chalicelib.runners import RunRequest, runner_for, runner_types, zygote
from chalicelib.runners.remote import dependency_refusal
from chalicelib.stopping import grace_of
from chalicelib.worker import deps
from chalicelib.worker.heartbeat import Heartbeat
from chalicelib.worker.packcache import PackCache
from chalicelib.worker.results import result_doc, secret_values
from chalicelib.worker.slots import Run, Slots, WorkerStopping

log = logging.getLogger(__name__)

TOKEN_SLACK_S = 300  # the action token outlives the timeout: the grace period and result upload fit in it
COMPLETE_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # then the reaper's turn
SHUTDOWN_MARGIN_S = 3.0
# Runner types whose pack needs a dependency environment, by the `deps` function that finds or builds it.
DEPENDENCY_BUILDERS = {"python3": "python_env", "node": "node_modules"}


@dataclass(frozen=True)
class Job:
    """An execution the worker has everything for; what `_execute` runs."""

    tenant_id: int
    execution_id: int
    runner_type: str
    parameters: dict[str, Any]
    code: str | None
    entry_point: str | None
    pack_dir: Path | None
    timeout_s: float
    secrets: tuple[str, ...] = ()
    worker_id: str = ""
    spec: ActionSpec | None = None
    secret_names: tuple[str, ...] = ()  # the parameters declared secret (the HTTP runner hides them)
    python: str | None = None  # the pack's virtualenv interpreter, when it has requirements
    node_modules: Path | None = None  # the pack's, when it has a package.json
    pack_key: str | None = None  # the pack archive's storage key, for the runner function (it fetches the pack)

    @property
    def actor(self) -> str:
        """How the audit log names the worker (T3.28: started and completed by the same one)."""
        return f"worker:{self.worker_id}"


def deps_owner(storage_key: str) -> str:
    """Whose dependency cache a pack version uses: `tenants/<tenant or system>/packs/<ref>/...` -> `<tenant>/<ref>`.

    System packs share one per pack; tenants never share one another's.
    """
    parts = storage_key.split("/")
    return f"{parts[1]}/{parts[3]}" if len(parts) > 3 and parts[0] == "tenants" else "unknown"


class Worker:
    """One process's worker: its slots, heartbeat and pack cache."""

    def __init__(
        self, cfg: WorkerSettings | None = None, *, packs: PackCache | None = None, heartbeat: Heartbeat | None = None
    ) -> None:
        self.cfg = cfg or worker_settings()
        self.slots = Slots(self.cfg.concurrency)
        self.packs = packs or PackCache(self.cfg.pack_cache_dir)
        self.heartbeat = heartbeat or Heartbeat(self.cfg.heartbeat_seconds)
        self.host = socket.gethostname()
        # A storage key names one immutable pack version, so its environment (built or found by the
        # hash of its requirements) is looked up once per worker, not re-hashed for every execution.
        self._envs: dict[tuple[str, str], Path | None] = {}
        self._key_ready = False  # the signing key was fetched once (it is cached from then on)

    def worker_id(self, slot: int | None = None) -> str:
        """`host:pid`, plus the slot when an action runs in it."""
        base = f"{self.host}:{os.getpid()}"
        return base if slot is None else f"{base}:{slot}"

    # -- phase 1: the queue handler's thread ---------------------------------
    def accept(self, message: ExecutionMessage) -> Run | None:
        """Claim and start the execution; None when there is nothing to run. Raises to have the message retried."""
        if self.slots.closed:
            raise WorkerStopping("the worker is shutting down and takes no new work")
        slot = self.slots.acquire()
        try:
            job = self._take(message, slot)
            if job is None:
                self.slots.release(slot)
                return None
        except BaseException:
            self.slots.release(slot)
            raise
        try:
            return self.slots.start(slot, f"worker-slot-{slot}", lambda run: self._execute(job, run))
        except RuntimeError as exc:  # no thread to run it on; the claim stands, so record why it did not run
            self.slots.release(slot)
            self._complete(job, status.FAILED, result_doc(error=f"worker error: could not start: {exc}"), 0.0)
            return None

    def _take(self, message: ExecutionMessage, slot: int) -> Job | None:
        """Load the execution and claim it; the job to run, or None when there is nothing to run.

        When everything the run needs is at hand already (its pack unpacked, its
        dependencies found, the signing key fetched, no sealed secrets to open),
        the claim goes in the load's own transaction: one database round trip
        fewer per execution on the hot path. Otherwise the plan's downloads and
        installs happen between the load and a claim of its own, outside any
        transaction, so raising there retries the message with nothing changed.
        """
        claimed: lifecycle.Moved | None = None
        # Pipelined: the audit entry and the acknowledgement go out together, not a round trip each.
        with system_tx() as cur, cur.connection.pipeline():
            row = executions_db.load_for_run(cur, message.tenant_id, message.execution_id)
            if row is None or row["status"] != status.SCHEDULED:
                outbox.ack(cur, message.outbox_id)  # a redelivery, a cancel, or not ours to know: done
                log.info("execution %d is %s; nothing to run", message.execution_id,
                         row["status"] if row else "unknown")
                return None
            plan = self._plan(row) if self._at_hand(row) else None
            if isinstance(plan, Job):
                plan = replace(plan, worker_id=self.worker_id(slot))
                claimed = lifecycle.claim(cur, plan.tenant_id, plan.execution_id, worker_id=plan.worker_id,
                                          runner_type=plan.runner_type)
                outbox.ack(cur, message.outbox_id)
        if isinstance(plan, Job):
            if claimed is None:
                log.info("execution %d was claimed elsewhere; nothing to run", plan.execution_id)
                return None
            publish(claimed.messages)
            return plan
        plan = self._plan(row)
        if isinstance(plan, str):
            self._refuse(message, plan)
            return None
        return self._claim(message, plan, slot)

    def _at_hand(self, row: dict[str, Any]) -> bool:
        """Whether planning this execution needs no download, install, key fetch or decryption (no I/O)."""
        key = row["pack_storage_key"]
        if not self._key_ready or row["secret_parameters"] is not None or row["action_id"] is None:
            return False
        if key and not self.packs.has(str(key)):
            return False
        builder = DEPENDENCY_BUILDERS.get(str(row["runner_type"]))
        return not key or builder is None or (builder, str(key)) in self._envs

    def _plan(self, row: dict[str, Any]) -> Job | str:
        """What to run, or why it cannot run. Infrastructure errors raise (nothing is changed yet)."""
        if row["action_id"] is None:
            return f"action {row['action_ref']!r} no longer exists"
        spec = ActionSpec.from_row(row)
        if spec.runner_type not in runner_types():
            return f"runner '{spec.runner_type}' is not available yet"
        key = row["pack_storage_key"]
        missing = spec.missing(has_pack_file=bool(key))
        if missing:
            return missing
        entry_point: str | None = None
        pack_dir: Path | None = None
        kind = kind_of(spec.runner_type)
        if kind is not None and kind.process and spec.code is None and spec.entry_point and key:  # a pack file
            try:
                entry_point = entry_point_path(row["entry_point"])  # StackStorm style: relative to actions/
                pack_dir = self.packs.get(key)  # ServiceUnavailable propagates: retry
            except (NotFound, ValidationFailed) as exc:
                return exc.message
        refusal = dependency_refusal(spec.runner_type, pack_dir, self.cfg.action_runner_function)
        if refusal is not None:  # before any install: the runner function could not use it
            return refusal
        python: str | None = None
        if pack_dir is not None and spec.runner_type == "python3":
            try:  # built once per requirements.txt content; a failed install fails the execution, not the worker
                env = self._env(deps.python_env, pack_dir, str(key))
            except deps.DependencyError as exc:
                return f"pack dependencies: {exc.message}"
            python = str(env / "bin" / "python") if env is not None else None
        node_modules: Path | None = None
        if pack_dir is not None and spec.runner_type == "node":
            try:
                node_modules = self._env(deps.node_modules, pack_dir, str(key))
            except deps.DependencyError as exc:
                return f"pack dependencies: {exc.message}"
        jwt_signing_key()  # fetched (and cached) now, so an unreachable Secrets Manager retries the message
        self._key_ready = True
        secret = open_secrets(int(row["tenant_id"]), int(row["id"]), row["secret_parameters"])
        parameters = {**(row["parameters"] or {}), **secret}
        secrets = secret_values(row["declared"], parameters)
        return Job(
            tenant_id=int(row["tenant_id"]),
            execution_id=int(row["id"]),
            runner_type=spec.runner_type,
            parameters=parameters,
            code=row["code"],
            entry_point=entry_point,
            pack_dir=pack_dir,
            timeout_s=spec.timeout_s or self.cfg.default_timeout_s,
            secrets=secrets,
            spec=replace(spec, secrets=secrets),
            python=python,
            node_modules=node_modules,
            pack_key=str(key) if pack_dir is not None else None,
            secret_names=tuple(sorted(declared_secrets(row["declared"] or {}))),
        )

    def _env(self, build: Callable[[Path, str], Path | None], pack_dir: Path, key: str) -> Path | None:
        """A pack version's dependency environment, from this worker's memo once found (a failure is not kept)."""
        memo = (build.__name__, key)  # the names DEPENDENCY_BUILDERS lists
        if memo not in self._envs:
            self._envs[memo] = build(pack_dir, deps_owner(key))
        return self._envs[memo]

    def _refuse(self, message: ExecutionMessage, reason: str) -> None:
        """Fail an execution that cannot run, without starting anything (no `execution.started`)."""
        with system_tx() as cur:
            moved = lifecycle.refuse(
                cur, message.tenant_id, message.execution_id, worker_id=self.worker_id(), reason=reason
            )
            outbox.ack(cur, message.outbox_id)
        publish(moved.messages if moved else [])
        log.warning("execution %d not run: %s", message.execution_id, reason)

    def _claim(self, message: ExecutionMessage, plan: Job, slot: int) -> Job | None:
        """scheduled -> running, outbox ack and audit in one transaction; None when another claim won."""
        job = replace(plan, worker_id=self.worker_id(slot))
        with system_tx() as cur:
            claimed = lifecycle.claim(
                cur, job.tenant_id, job.execution_id, worker_id=job.worker_id, runner_type=job.runner_type
            )
            outbox.ack(cur, message.outbox_id)
        if claimed is None:
            log.info("execution %d was claimed elsewhere; nothing to run", job.execution_id)
            return None
        publish(claimed.messages)
        return job

    # -- phase 2: the slot's thread -------------------------------------------
    def _execute(self, job: Job, run: Run) -> None:
        """Run the action under a heartbeat and record what happened; never raises."""
        key = (job.tenant_id, job.execution_id)
        self.heartbeat.add(key, run.cancel)
        try:
            final, result, duration, timed_out = self._run_action(job, run)
            self._complete(job, final, result, duration, cause="timeout" if timed_out else "failure")
        finally:
            self.heartbeat.remove(key)

    def _run_action(self, job: Job, run: Run) -> tuple[str, dict[str, Any], float, bool]:
        """(status, result, duration): the runner's outcome, or a failure that stops short of running."""
        started = time.monotonic()
        try:
            token = issue_action_token(
                jwt_signing_key(), tenant_id=job.tenant_id, execution_id=job.execution_id,
                ttl_seconds=int(job.timeout_s) + TOKEN_SLACK_S,
            )
            request = RunRequest(
                execution_id=job.execution_id, runner_type=job.runner_type, parameters=job.parameters,
                code=job.code, entry_point=job.entry_point, pack_dir=job.pack_dir, timeout_s=job.timeout_s,
                max_output_bytes=self.cfg.max_output_bytes, spec=job.spec, python=job.python,
                node_modules=job.node_modules,
                context={"api_url": self.cfg.api_url, "token": token,
                         "execution_id": job.execution_id, "tenant_id": job.tenant_id,
                         "secret_names": list(job.secret_names)},
            )
            runner = runner_for(job.runner_type, grace_s=self.cfg.action_grace_s,
                                runner_function=self.cfg.action_runner_function, pack_key=job.pack_key)
            outcome = runner.run(request, cancel=run.cancel)
        except ValidationFailed as exc:  # refused before a process started: entry point, parameters
            elapsed = round(time.monotonic() - started, 3)
            return status.FAILED, result_doc(error=exc.message, secrets=job.secrets), elapsed, False
        except Exception as exc:  # claimed: record the failure, never leave it running
            log.exception("execution %d: the worker failed to run the action", job.execution_id)
            reason = f"worker error: {type(exc).__name__}: {exc}"
            elapsed = round(time.monotonic() - started, 3)
            return status.FAILED, result_doc(error=reason, secrets=job.secrets), elapsed, False
        final: str = outcome.status
        error = outcome.error
        if final == status.CANCELED and run.aborted is not None:
            final, error = status.FAILED, run.aborted
        result = result_doc(exit_code=outcome.exit_code, stdout=outcome.stdout, stderr=outcome.stderr,
                         output=outcome.output, error=error, secrets=job.secrets)
        return final, result, outcome.duration_s, outcome.timed_out

    def _complete(
        self, job: Job, final: str, result: dict[str, Any], duration_s: float, cause: str = "failure"
    ) -> None:
        """running -> final + audit in one transaction; a reaped or canceled execution keeps its state."""
        delays = list(COMPLETE_RETRY_DELAYS_S)
        fallback = False
        while True:
            try:
                moved = self._record(job, final, result, duration_s, cause)
            except ServiceUnavailable as exc:
                if not delays:
                    log.error("execution %d: result lost, database unavailable (%s); the reaper will fail it",
                              job.execution_id, exc.message)
                    return
                delay = delays.pop(0)
                log.warning("execution %d: storing the result failed (%s); retrying in %gs",
                            job.execution_id, exc.message, delay)
                time.sleep(delay)
                continue
            except AttuneError as exc:  # the database refused the result itself: store why instead
                if fallback:
                    log.error("execution %d: not even a minimal result was stored: %s", job.execution_id, exc.message)
                    return
                log.error("execution %d: result refused by the database: %s", job.execution_id, exc.message)
                fallback, final = True, status.FAILED
                result = result_doc(exit_code=result["exit_code"], error=f"could not store the result: {exc.message}")
                continue
            if moved:
                log.info("execution %d %s in %.3fs", job.execution_id, final, duration_s)
            else:
                log.warning("execution %d was finished elsewhere (reaped or canceled); its %s result is dropped",
                            job.execution_id, final)
            return

    @staticmethod
    def _record(job: Job, final: str, result: dict[str, Any], duration_s: float, cause: str) -> bool:
        """Complete the execution (or, when its retry policy covers this failure, schedule the next attempt)."""
        with system_tx() as cur, cur.connection.pipeline():  # the audit entry and the enforcement's move together
            moved = lifecycle.complete(
                cur, job.tenant_id, job.execution_id, final=final, result=result, actor=job.actor,
                detail={"duration_s": duration_s}, retry_policy=job.spec.retry if job.spec else None, cause=cause,
            )
        if moved is None:
            return False
        publish(moved.messages)
        return True

    # -- lifecycle -------------------------------------------------------------
    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no action runs (Lambda: the environment is frozen once the handler returns)."""
        return self.slots.wait_idle(timeout)

    def shutdown(self, drain_seconds: float) -> None:
        """Take no new work, let running actions finish for `drain_seconds`, then stop the rest and record them."""
        self.slots.close()
        if not self.slots.wait_idle(drain_seconds):
            stopped = self.slots.abort_all(
                f"the worker shut down before the action finished (it waited {drain_seconds:g}s)")
            log.warning("worker shutdown: stopping %d action(s) still running", stopped)
            self.slots.wait_idle(self.cfg.action_grace_s + SHUTDOWN_MARGIN_S)
        self.heartbeat.stop()
        zygote.pool().close()  # the tenants' sandboxes go with the worker, not only at interpreter exit
        if self.slots.busy() == 0:
            self.packs.clear()


_lock = threading.Lock()
_worker: Worker | None = None


def worker() -> Worker:
    """The process's worker, built on first use so imports never read settings or touch the network."""
    global _worker
    if _worker is None:
        with _lock:
            if _worker is None:
                _worker = Worker()
    return _worker


def reset_worker(drain_seconds: float = 30.0) -> None:
    """Shut the process's worker down and forget it (tests that change the environment)."""
    global _worker
    with _lock:
        found, _worker = _worker, None
    if found is not None:
        found.shutdown(drain_seconds)


def _requeue(receipt_handle: str) -> None:
    """Make a message we will not take visible again at once, instead of after the visibility timeout."""
    try:
        queues.release("work", receipt_handle)
    except ServiceUnavailable as exc:
        log.warning("could not release a work message (%s); it returns after its visibility timeout", exc)


def handle_record(body: str, receipt_handle: str | None = None) -> None:
    """One work-queue record: returns once its action has started (or there was nothing to run).

    Raises when the message must come back: the worker is stopping (the
    message is released at once) or something failed before the claim.
    """
    message = ExecutionMessage.model_validate_json(body)
    try:
        worker().accept(message)
    except WorkerStopping:
        if receipt_handle:
            _requeue(receipt_handle)
        raise


def wait_idle(timeout: float | None = None) -> bool:
    """Wait for the process's running actions to finish."""
    return worker().wait_idle(timeout)


def serve(stop: threading.Event, ready: threading.Event) -> None:
    """The `worker` role's main: on stop, finish in-flight actions within the role's grace (T3.30)."""
    current = worker()
    ready.set()
    stop.wait()
    grace = grace_of(stop)
    drain = max(1.0, grace - current.cfg.action_grace_s - SHUTDOWN_MARGIN_S)
    log.info("worker stopping: %d action(s) in flight, waiting up to %gs", current.slots.busy(), drain)
    current.shutdown(drain)

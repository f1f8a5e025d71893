"""Attune side by side with n8n, in one run, on one machine, under one load generator.

Our users compare us with n8n on the same laptop, so the figures that matter
are ratios measured under the same load at the same time (a 2-core machine
shared with other work is noisy; the load average is in the JSON):

- throughput: completed executions/s at saturation, `ATTUNE_PEERS_BURST`
  (1000) webhooks from 8 client threads as fast as each answers; Attune's
  webhook -> rule -> a trivial action (shell `core.local cmd=true`, and a
  python3 `run()`), n8n's async webhook -> Code node. Completions are counted
  from each system's own records (our `attune.execution`, n8n's SQLite
  `execution_entity`), over first request sent -> last execution finished;
- latency: 100 sequential webhooks 50 ms apart, webhook sent -> execution
  finished (ours, from PostgreSQL's clock; the event and work queue hops are
  all there) against n8n's sync webhook round trip (it answers once the Code
  node ran), with both systems up, in `ATTUNE_PEERS_ROUNDS` (5) rounds that
  alternate between them: the machine's speed drifts within seconds;
- idle CPU: each whole system's CPU over 10 s with nothing to do;
- memory: PSS of each whole system (every process) at idle and after the load;
- start-up: process start -> first webhook served, for `attune dev` on an
  installed checkout (a data dir that has run before) and for n8n.

Also, for Attune alone: CPU-ms per execution per process at a steady rate
(bench/cpu_profile.py), which says where the time goes, and what Lambda
would bill per execution (the roles, without the emulators).

n8n comes from `../shared/peers/n8n/n8n_peer.py` (ATTUNE_N8N_PEER_DIR; it
installs n8n with npm on first use). When npm, Node or n8n is unavailable,
the JSON says why and Attune runs alone.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from bench import cpu_profile
from bench.api_latency import _summary
from bench.pipeline import _wait as pipeline_wait
from chalicelib.local.harness import RunningCloud, running_cloud

PASSWORD = "bench-password-123"  # noqa: S105 - a throwaway user of a throwaway cloud
PEER_DIR = Path(os.environ.get("ATTUNE_N8N_PEER_DIR", Path(__file__).resolve().parents[2] / "shared/peers/n8n"))
N8N_HOME = Path(os.environ.get("ATTUNE_N8N_HOME", os.path.expanduser("~/.cache/attune-peers/n8n")))
N8N_PORT = int(os.environ.get("ATTUNE_N8N_PORT", "5678"))
# The benchmark's own load must not be shaped by the per-trigger webhook limit (n8n has none).
CLOUD_ENV = {"ATTUNE_WEBHOOK_RATE_LIMIT_PER_S": "100000", "ATTUNE_WEBHOOK_RATE_LIMIT_BURST": "100000"}
PYTHON_PACK = {
    "actions/ok.yaml": "name: ok\nrunner_type: python3\nentry_point: ok.py\nparameters: {}\n",
    "actions/ok.py": "def run(**params):\n    return {**params, 'processed': True}\n",
}
FINAL = ("succeeded", "succeeded_with_errors", "failed", "canceled")
# The executions of one action after a mark, as n8n_peer's `finished_since` counts its own.
FINISHED_SINCE = """
SELECT count(*) FILTER (WHERE status = 'succeeded') AS success,
       count(*) FILTER (WHERE status <> 'succeeded' AND status = ANY(%(final)s)) AS other,
       count(*) FILTER (WHERE NOT status = ANY(%(final)s)) AS unfinished,
       extract(epoch FROM min(started))::float8 AS first_started,
       extract(epoch FROM max(finished))::float8 AS last_stopped
FROM attune.execution WHERE tenant_id = %(tenant_id)s AND action_ref = %(action_ref)s AND id > %(mark)s
"""
MARK = "SELECT coalesce(max(id), 0) AS mark FROM attune.execution"
# webhook event -> its execution's finish, for the sequential latency.
FINISHED_BY_EVENT = """
SELECT en.event_id, extract(epoch FROM e.finished)::float8 AS finished, e.status,
       extract(epoch FROM ev.created)::float8 AS event_at, extract(epoch FROM en.created)::float8 AS enforced_at,
       extract(epoch FROM e.started)::float8 AS started_at
FROM attune.enforcement en JOIN attune.execution e ON e.enforcement_id = en.id
JOIN attune.event ev ON ev.id = en.event_id
WHERE en.tenant_id = %(tenant_id)s AND en.event_id = ANY(%(ids)s)
"""
# Where a sequential webhook's time goes, hop by hop (each a transaction's own now()).
HOPS = (("sent_to_event", None, "event_at"), ("event_to_enforcement", "event_at", "enforced_at"),
        ("enforcement_to_started", "enforced_at", "started_at"), ("started_to_finished", "started_at", "finished"))


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _wait(probe: Callable[[], Any], what: str, timeout: float, every: float = 0.2) -> Any:
    """bench.pipeline's wait, polling a little faster by default (start-up and drain times are measured with it)."""
    return pipeline_wait(probe, what, timeout, every)


def _machine_load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- the systems ---------------------------------------------------------------------------------------------------
@dataclass
class Attune:
    """A running local cloud with one tenant, two webhook triggers and their rules (shell, python3)."""

    cloud: RunningCloud
    db: psycopg.Connection[dict[str, Any]]
    tenant_id: int
    triggers: dict[str, int]
    actions: dict[str, str]

    @classmethod
    def prepare(cls, cloud: RunningCloud) -> Attune:
        """Register a tenant, the python3 pack, the triggers and rules the load goes through."""
        http = httpx.Client(base_url=cloud.url, timeout=30)
        username = f"bench-peers-{uuid.uuid4().hex[:8]}"
        who = http.post("/auth/register", json={"username": username, "password": PASSWORD}).json()
        token = http.post("/auth/login", json={"username": username, "password": PASSWORD}).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        ref = f"peers_{uuid.uuid4().hex[:8]}"
        _ok(http.post("/api/v1/packs", json={"ref": ref, "version": "1.0.0", "files": PYTHON_PACK}))
        actions = {"shell": "core.local", "python3": f"{ref}.ok"}
        params = {"shell": {"cmd": "true"}, "python3": {}}
        triggers: dict[str, int] = {}
        for kind, action in actions.items():
            trigger = _ok(http.post("/api/v1/triggers", json={"type": "webhook"}))
            _ok(http.post("/api/v1/rules", json={"trigger_id": trigger["id"], "action_ref": action,
                                                 "parameters": params[kind]}))
            triggers[kind] = int(trigger["id"])
        http.close()
        assert cloud.database_url is not None
        db = psycopg.connect(cloud.database_url, autocommit=True, row_factory=dict_row)
        return cls(cloud, db, int(who["tenant_id"]), triggers, actions)

    def url(self, kind: str) -> str:
        """The webhook of the trigger whose rule runs the `kind` action."""
        return f"{self.cloud.url}/api/v1/webhooks/{self.triggers[kind]}"

    def mark(self) -> int:
        """The newest execution id now."""
        row = self.db.execute(MARK).fetchone()
        return int(row["mark"]) if row else 0

    def finished_since(self, mark: int, kind: str) -> dict[str, Any]:
        """The `kind` action's executions after `mark`, in n8n_peer's shape."""
        row = self.db.execute(FINISHED_SINCE, {"tenant_id": self.tenant_id, "action_ref": self.actions[kind],
                                               "mark": mark, "final": list(FINAL)}).fetchone()
        assert row is not None
        return dict(row)

    def finished_by_event(self, event_ids: list[int]) -> dict[int, tuple[float | None, str, dict[str, Any]]]:
        """event id -> (its execution's finish, epoch s; its status; its stage times, for HOPS)."""
        rows = self.db.execute(FINISHED_BY_EVENT, {"tenant_id": self.tenant_id, "ids": event_ids}).fetchall()
        return {int(r["event_id"]): (r["finished"], str(r["status"]), dict(r)) for r in rows}

    def pss_bytes(self) -> int:
        """The whole local cloud's PSS."""
        return cpu_profile.pss_bytes(self.cloud.data_dir)


def _ok(resp: httpx.Response) -> Any:
    if resp.status_code >= 300:
        raise RuntimeError(f"{resp.request.method} {resp.request.url} answered {resp.status_code}: {resp.text}")
    return resp.json()


# -- the load generator --------------------------------------------------------------------------------------------
@dataclass
class Burst:
    """What the clients saw of one burst."""

    started_at: float  # epoch s, first request
    sent_for_s: float
    statuses: dict[int, int]
    errors: int


def burst(url: str, count: int, threads: int) -> Burst:
    """POST `count` small JSON bodies to `url` from `threads` closed-loop clients, as fast as each is answered."""
    lock = threading.Lock()
    remaining = [count]
    statuses: dict[int, int] = {}
    errors = [0]

    def client() -> None:
        with httpx.Client(timeout=60) as http:
            while True:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                    i = remaining[0]
                try:
                    code = http.post(url, json={"i": i, "host": "bench"}).status_code
                except httpx.HTTPError:
                    with lock:
                        errors[0] += 1
                    continue
                with lock:
                    statuses[code] = statuses.get(code, 0) + 1

    workers = [threading.Thread(target=client) for _ in range(threads)]
    started, t0 = time.time(), time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return Burst(started, time.perf_counter() - t0, statuses, errors[0])


def throughput(url: str, mark: Callable[[], int], finished_since: Callable[[int], dict[str, Any]],
               *, count: int, threads: int, drain_s: float) -> dict[str, Any]:
    """Completed executions/s at saturation: `count` webhooks, counted from the system's own records."""
    m = mark()
    sent = burst(url, count, threads)
    accepted = sum(n for code, n in sent.statuses.items() if 200 <= code < 300)
    done: dict[str, Any] = {}

    def all_done() -> bool:
        done.update(finished_since(m))
        return int(done["success"]) + int(done["other"]) >= accepted

    drained = True
    try:
        _wait(all_done, f"{accepted} executions to finish", drain_s, every=0.5)
    except RuntimeError:
        drained = False
    span = (done["last_stopped"] or sent.started_at) - sent.started_at
    return {
        "webhooks": count, "client_threads": threads, "statuses": {str(k): v for k, v in sent.statuses.items()},
        "transport_errors": sent.errors, "sent_in_s": round(sent.sent_for_s, 2),
        "sent_per_s": round(count / sent.sent_for_s, 1), "succeeded": done["success"], "other": done["other"],
        "drained": drained, "span_s": round(span, 2),
        "completed_per_s": round(int(done["success"]) / span, 1) if span > 0 else None,
    }


Sent = tuple[float, float, Any]  # (epoch s sent, round trip ms, what the answer said)


def sequential(post: Callable[[int], Sent], count: int, gap_s: float) -> list[Sent]:
    """`count` webhooks one after the other, `gap_s` between one answer and the next send (client pacing)."""
    out = []
    for i in range(count):
        out.append(post(i))
        time.sleep(gap_s)  # client-side pacing between requests, not a wait for the system
    return out


@dataclass
class Round:
    """One system's sequential webhooks of one round: what each took, and where (Attune) the time went."""

    finished_ms: list[float]  # webhook sent -> execution finished (Attune) / sync round trip (n8n)
    failed: int
    hops_ms: dict[str, list[float]] = field(default_factory=dict)
    accepted_ms: list[float] = field(default_factory=list)  # Attune's 202 round trip


def attune_latency(system: Attune, kind: str, count: int, gap_s: float, warm_up: int = 5) -> Round:
    """Webhook sent -> execution finished (PostgreSQL's clock), `count` sequential webhooks."""
    http = httpx.Client(timeout=30)

    def post(i: int) -> tuple[float, float, Any]:
        wall, t0 = time.time(), time.perf_counter()
        resp = http.post(system.url(kind), json={"i": i, "host": "bench"})
        return wall, (time.perf_counter() - t0) * 1000, int(_ok(resp)["event_id"])

    sequential(post, warm_up, gap_s)  # warm-up: connections, caches, the pack's first unpack
    sent = sequential(post, count, gap_s)
    http.close()
    ids = [s[2] for s in sent]
    found = _wait(lambda: (f := system.finished_by_event(ids)) and len(f) == len(ids)
                  and all(v[0] is not None for v in f.values()) and f, "the sequential executions", 120)
    ok = [(s[0], found[s[2]][2]) for s in sent if found[s[2]][1] == "succeeded"]
    return Round(finished_ms=[(row["finished"] - at) * 1000 for at, row in ok],
                 failed=sum(1 for s in sent if found[s[2]][1] != "succeeded"),
                 hops_ms={name: [((row[end] or 0) - (row[begin] if begin else at)) * 1000 for at, row in ok]
                          for name, begin, end in HOPS},
                 accepted_ms=[s[1] for s in sent])


def n8n_latency(peer: Any, count: int, gap_s: float, warm_up: int = 5) -> Round:
    """n8n's sync webhook round trip: it answers once the Code node ran."""
    http = httpx.Client(timeout=30)

    def post(i: int) -> tuple[float, float, Any]:
        wall, t0 = time.time(), time.perf_counter()
        resp = http.post(peer.sync_url, json={"i": i, "host": "bench"})
        return wall, (time.perf_counter() - t0) * 1000, resp.status_code

    sequential(post, warm_up, gap_s)
    sent = sequential(post, count, gap_s)
    http.close()
    return Round(finished_ms=[s[1] for s in sent if s[2] == 200], failed=sum(1 for s in sent if s[2] != 200))


def _pooled(rounds: list[Round]) -> dict[str, Any]:
    """Every round's samples together, and each round's own p50/p95 (how much the machine drifted meanwhile)."""
    finished = [ms for r in rounds for ms in r.finished_ms]
    out: dict[str, Any] = {
        "webhook_to_finished": _summary(finished) if finished else None,
        "failed": sum(r.failed for r in rounds),
        "by_round": [{"p50_ms": (x := _summary(r.finished_ms))["p50_ms"], "p95_ms": x["p95_ms"]}
                     for r in rounds if r.finished_ms],
    }
    if any(r.hops_ms for r in rounds):
        out["hops"] = {name: _summary([ms for r in rounds for ms in r.hops_ms.get(name, [])])
                       for name, _, _ in HOPS} if finished else None
        out["webhook_202"] = _summary([ms for r in rounds for ms in r.accepted_ms])
    return out


def interleaved_latency(system: Attune, kinds: list[str], peer: Any | None, *, count: int, gap_s: float,
                        rounds: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Sequential latency of each Attune action kind and of n8n, taken in turns: `rounds` rounds of `count/rounds`.

    Why in turns: on this kind of machine (a 2-core VM) the same system in
    the same state gives p50s 25 ms apart from one 100-request run to the
    next (measured: 25.3, 32.6, 25.8 ms in a row), so measuring one system
    and then the other compares the machine's two moments as much as the
    two systems. Both are up (the other idles meanwhile: its idle CPU is in
    the JSON) and the order alternates from round to round.
    """
    per_round = max(1, count // rounds)
    ours: dict[str, list[Round]] = {kind: [] for kind in kinds}
    theirs: list[Round] = []
    turns = [*kinds, *(["n8n"] if peer is not None else [])]
    for i in range(rounds):
        for who in turns if i % 2 == 0 else reversed(turns):
            if who == "n8n":
                theirs.append(n8n_latency(peer, per_round, gap_s))
            else:
                ours[who].append(attune_latency(system, who, per_round, gap_s))
    return ({kind: _pooled(r) for kind, r in ours.items()},
            _pooled(theirs) if peer is not None else None)


# -- start-up ------------------------------------------------------------------------------------------------------
def attune_startup(data_dir: Path, trigger_id: int, timeout: float = 120) -> dict[str, Any]:
    """`attune dev` on a data dir that ran before: process start -> first webhook answered 202."""
    from chalicelib.local.cloud import health_ok

    started = time.monotonic()
    with running_cloud(extra_env=CLOUD_ENV, data_dir=data_dir) as cloud:
        healthy = time.monotonic() - started
        url = f"{cloud.url}/api/v1/webhooks/{trigger_id}"
        served = _wait(lambda: _post_status(url) == 202 and time.monotonic(), "the first webhook", timeout, 0.05)
        assert health_ok(f"{cloud.url}/health")
        idle_pss = cpu_profile.pss_bytes(cloud.data_dir)
    # running_cloud polls /health every 0.2 s, so `healthy` is late by up to that much.
    return {"to_healthy_s": round(healthy, 2), "to_first_webhook_s": round(served - started, 2),
            "idle_pss_mb": round(idle_pss / 2**20, 1)}


def _post_status(url: str) -> int | None:
    try:
        return httpx.post(url, json={"probe": 1}, timeout=5).status_code
    except httpx.HTTPError:
        return None


# -- the run -------------------------------------------------------------------------------------------------------
def _n8n() -> tuple[AbstractContextManager[Any], str | None]:
    """n8n's context manager, or why there is none (the benchmark then runs Attune alone)."""
    if os.environ.get("ATTUNE_PEERS_SKIP_N8N"):
        return nullcontext(None), "skipped (ATTUNE_PEERS_SKIP_N8N)"
    peer_file = PEER_DIR / "n8n_peer.py"
    if not peer_file.exists():
        return nullcontext(None), f"no peer harness at {peer_file}"
    if not (N8N_HOME / "node_modules" / ".bin" / "n8n").exists() and not shutil.which("npm"):
        return nullcontext(None), "n8n is not installed and npm is not available"
    module = _load("n8n_peer", peer_file)
    os.environ.setdefault("N8N_RUNNERS_BROKER_PORT", str(N8N_PORT + 1))  # never another n8n's default 5679
    return module.N8n(N8N_HOME, port=N8N_PORT), None


@contextmanager
def _cloud(data_dir: Path) -> Iterator[tuple[RunningCloud, float]]:
    started = time.monotonic()
    with running_cloud(extra_env=CLOUD_ENV, data_dir=data_dir) as cloud:
        yield cloud, time.monotonic() - started


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 2) if ours and theirs else None


def profile(system: Attune, kind: str, *, rate: float, seconds: float, drain_s: float = 120) -> dict[str, Any]:
    """CPU-ms per execution per process at a steady webhook rate (below saturation)."""
    http = httpx.Client(timeout=30)
    m = system.mark()
    calls_before = cpu_profile.emulator_calls(system.cloud.data_dir)
    before = cpu_profile.sample(system.cloud.data_dir)
    busy_before = cpu_profile.machine_busy_s()
    count = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(count):
        pause = t0 + i / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)  # client-side open-loop pacing
        _ok(http.post(system.url(kind), json={"i": i}))
    http.close()
    _wait(lambda: int(system.finished_since(m, kind)["unfinished"]) == 0
          and int((f := system.finished_since(m, kind))["success"]) + int(f["other"]) >= count,
          "the profiled executions", drain_s, every=0.5)
    after = cpu_profile.sample(system.cloud.data_dir)
    busy = cpu_profile.machine_busy_s() - busy_before
    result = cpu_profile.per_execution(before, after, count)
    result["machine_busy_ms_per_execution"] = round(busy * 1000 / count, 2)  # incl. the load generator
    result["emulator_calls_per_execution"] = cpu_profile.calls_per_execution(
        calls_before, cpu_profile.emulator_calls(system.cloud.data_dir), count)
    result.update(rate_per_s=rate, action=kind, load_avg=_machine_load())
    return result


IDLE_S = 10.0  # how long each system's idle CPU is sampled


def idle_cpu(cpu_seconds: Callable[[], float], seconds: float = IDLE_S) -> float:
    """A whole system's CPU while nothing happens, in ms per second (polls, sweeps, heartbeats)."""
    before = cpu_seconds()
    time.sleep(seconds)  # the measurement itself: CPU used over a fixed idle interval
    return round((cpu_seconds() - before) * 1000 / seconds, 1)


def attune_cpu_seconds(data_dir: Path) -> float:
    """CPU seconds used so far by every process of the local cloud."""
    sample = cpu_profile.sample(data_dir)
    return sum(sample.own.values()) + sum(sample.children.values())


def _attune_alone(ours: dict[str, Any], data_dir: Path, kinds: list[str], burst_count: int, threads: int) -> int:
    """Attune alone: idle memory and CPU, the CPU profile, throughput, memory after; the shell trigger's id."""
    with _cloud(data_dir) as (cloud, fresh_start_s):
        ours["fresh_start_to_healthy_s"] = round(fresh_start_s, 2)
        system = Attune.prepare(cloud)
        ours["idle_pss_mb"] = round(system.pss_bytes() / 2**20, 1)
        ours["idle_cpu_ms_per_s"] = idle_cpu(functools.partial(attune_cpu_seconds, data_dir))
        ours["profile"] = {k: profile(system, k, rate=float(os.environ.get("ATTUNE_PEERS_PROFILE_RATE", "40")),
                                      seconds=10) for k in kinds if k == "shell"}
        for kind in kinds:
            ours[f"throughput_{kind}"] = throughput(
                system.url(kind), system.mark, functools.partial(system.finished_since, kind=kind),
                count=burst_count, threads=threads, drain_s=600)
            ours[f"throughput_{kind}"]["load_avg"] = _machine_load()
        ours["pss_after_load_mb"] = round(system.pss_bytes() / 2**20, 1)
        system.db.close()
        return system.triggers["shell"]


def _ratios(ours: dict[str, Any], theirs: dict[str, Any], kinds: list[str]) -> dict[str, Any]:
    """Ours over theirs, figure by figure (empty without n8n's figures)."""
    ratios: dict[str, Any] = {}
    if theirs.get("throughput") and theirs.get("latency"):
        for kind in kinds:
            ratios[f"throughput_{kind}_vs_n8n"] = _ratio(ours[f"throughput_{kind}"]["completed_per_s"],
                                                         theirs["throughput"]["completed_per_s"])
            for q in ("p95", "p50"):
                ratios[f"latency_{q}_{kind}_vs_n8n_sync"] = _ratio(
                    (ours[f"latency_{kind}"]["webhook_to_finished"] or {}).get(f"{q}_ms"),
                    theirs["latency"]["webhook_to_finished"][f"{q}_ms"])
        ratios["pss_after_load_vs_n8n"] = _ratio(ours["pss_after_load_mb"], theirs["pss_after_load_mb"])
        ratios["startup_vs_n8n"] = _ratio(ours["startup"]["to_first_webhook_s"],
                                          theirs["startup"]["to_first_webhook_s"])
        ratios["idle_cpu_vs_n8n"] = _ratio(ours["idle_cpu_ms_per_s"], theirs["idle_cpu_ms_per_s"])
    return ratios


def run(burst_count: int | None = None, threads: int = 8, sequential_count: int = 100,
        gap_s: float = 0.05, rounds: int | None = None) -> dict[str, Any]:
    """Both systems, the same load, one run; the JSON-able result with the ratios.

    Each system alone on the machine for start-up, memory, idle CPU, the CPU
    profile and throughput (Attune, then n8n); then both up for the
    sequential latency, taken in alternating rounds (`interleaved_latency`).
    """
    burst_count = burst_count or int(os.environ.get("ATTUNE_PEERS_BURST", "1000"))
    rounds = rounds or int(os.environ.get("ATTUNE_PEERS_ROUNDS", "5"))
    kinds = [k for k in os.environ.get("ATTUNE_PEERS_ACTIONS", "shell,python3").split(",") if k]
    data_dir = Path(tempfile.mkdtemp(prefix="attune-peers-"))
    ours: dict[str, Any] = {"load_avg_start": _machine_load()}
    theirs: dict[str, Any] = {}
    peer_cm, unavailable = _n8n()
    trigger = _attune_alone(ours, data_dir, kinds, burst_count, threads)
    ours["startup"] = attune_startup(data_dir, trigger)

    def latency(peer: Any | None) -> None:
        """Attune's cloud once more (the same data dir), beside the idle `peer`, for the latency rounds."""
        with _cloud(data_dir) as (again, _):
            system = Attune.prepare(again)
            mine, peers_own = interleaved_latency(system, kinds, peer, count=sequential_count, gap_s=gap_s,
                                                  rounds=rounds)
            system.db.close()
        for kind in kinds:
            ours[f"latency_{kind}"] = mine[kind]
        if peers_own is not None:
            theirs["latency"] = peers_own

    if unavailable is None:
        try:
            with peer_cm as peer:
                theirs["startup"] = {"to_first_webhook_s": round(peer.started_in_s, 2)}
                theirs["idle_pss_mb"] = round(peer.tree_pss_bytes() / 2**20, 1)
                theirs["idle_cpu_ms_per_s"] = idle_cpu(lambda: float(peer.tree_cpu_seconds()))
                def n8n_finished(m: int) -> dict[str, Any]:
                    return dict(peer.finished_since(m, "async"))

                theirs["throughput"] = throughput(peer.async_url, peer.mark, n8n_finished,
                                                  count=burst_count, threads=threads, drain_s=600)
                theirs["throughput"]["load_avg"] = _machine_load()
                theirs["pss_after_load_mb"] = round(peer.tree_pss_bytes() / 2**20, 1)
                latency(peer)
        except (RuntimeError, OSError) as exc:
            unavailable = f"n8n failed: {exc}"
    if unavailable is not None:
        latency(None)
    shutil.rmtree(data_dir, ignore_errors=True)
    ratios = _ratios(ours, theirs, kinds)
    return {
        "benchmark": "peers",
        "load_avg_end": _machine_load(),
        "attune": ours,
        "n8n": theirs if unavailable is None else {"unavailable": unavailable},
        "ratios": ratios,
        "notes": ("throughput: completed (succeeded) executions / (last finished - first webhook sent), from each "
                  "system's own records; latency: Attune webhook send -> execution.finished (PostgreSQL clock) vs "
                  "n8n's sync webhook round trip, both systems up, in alternating rounds (by_round: each round's own "
                  "p50/p95); everything else with each system alone on the machine; "
                  "per-trigger webhook rate limit raised for the run (n8n has none); other work on this machine "
                  "shows in load_avg"),
    }

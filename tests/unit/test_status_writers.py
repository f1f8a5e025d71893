"""Architecture rules read from the source tree (ARCHITECTURE §5): who may write what, and call whom.

- only `chalicelib/db/executions.py` holds SQL that writes `attune.execution.status`
  (an UPDATE whose SET names status, or an INSERT of an execution), and its writing
  functions are used only by the lifecycle (`chalicelib/executions/`);
- only `emit_event` (`chalicelib/pipeline/events.py`) creates events;
- only `chalicelib/aws/` and `chalicelib/local/` talk to boto3 / SQS directly;
- an API view module imports no other view module.

Each checker is proven on synthetic sources (it must flag the violation a
careless edit would add) as well as run over the real tree. Pure: it reads
files, runs nothing.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("chalicelib", "functions")  # production code; tests/ may set up rows with SQL
EXECUTIONS_SQL = "chalicelib/db/executions.py"
LIFECYCLE_PACKAGE = "chalicelib/executions/"
WRITERS = frozenset({"move", "start", "claim", "retry", "insert_execution", "set_secret_parameters"})
EVENTS_SQL = "chalicelib/db/pipeline.py"  # the SQL (and `insert_event`) live in the db layer ...
EMIT_EVENT = "chalicelib/pipeline/events.py"  # ... and only emit_event calls it
AWS_ADAPTERS = ("chalicelib/aws/", "chalicelib/local/")
API_HELPERS = frozenset({"context", "params", "serialize", "openapi"})


# -- reading the tree ------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """A production file: its path from the repository root and its text."""

    path: str
    text: str

    @property
    def module(self) -> str:
        """Its dotted module name (`chalicelib/db/executions.py` -> `chalicelib.db.executions`)."""
        dotted = self.path.removesuffix(".py").replace("/", ".")
        return dotted.removesuffix(".__init__")

    @property
    def package(self) -> str:
        """The package its relative imports start from."""
        return self.module if self.path.endswith("__init__.py") else self.module.rpartition(".")[0]


def tree_sources(suffixes: tuple[str, ...] = (".py", ".sql")) -> list[Source]:
    """Every production file under chalicelib/ and functions/ (never tests/)."""
    found: list[Source] = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in suffixes and path.is_file() and "__pycache__" not in path.parts:
                found.append(Source(path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")))
    return found


def test_the_scan_sees_the_production_tree() -> None:
    # GIVEN the scanned tree THEN it holds the files the rules are about (a wrong root would pass everything)
    paths = {s.path for s in tree_sources()}
    for expected in (EXECUTIONS_SQL, EMIT_EVENT, EVENTS_SQL, "chalicelib/worker/service.py",
                     "chalicelib/executions/lifecycle.py", "functions/worker/app.py", "chalicelib/api/executions.py"):
        assert expected in paths, expected
    assert not any(p.startswith("tests/") for p in paths)


# -- SQL text in a module ------------------------------------------------------------------
def _folded(node: ast.AST) -> str | None:
    """The text of a string expression: constants, `+` chains of them, f-strings (holes as `?`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(v.value) if isinstance(v, ast.Constant) else "?" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _folded(node.left), _folded(node.right)
        if left is not None or right is not None:
            return (left or "?") + (right or "?")
    return None


def sql_texts(source: Source) -> Iterator[str]:
    """Every string a module holds (whitespace collapsed): the candidates for SQL."""
    texts: list[str] = []
    if source.path.endswith(".sql"):
        texts.append(source.text)
    else:
        for node in ast.walk(ast.parse(source.text, filename=source.path)):
            folded = _folded(node)
            if folded is not None:
                texts.append(folded)
    for text in texts:
        yield " ".join(text.split())


def _table(name: str) -> str:
    """A table reference in SQL: optionally schema-qualified and quoted; not a longer name (`execution_x`)."""
    return rf'(?:"?attune"?\s*\.\s*)?"?{name}"?(?![\w"])'


_STATEMENT_END = r"(?=\bWHERE\b|\bFROM\b|\bRETURNING\b|;|$)"
EXECUTION_UPDATE = re.compile(
    rf"\bUPDATE\s+(?:ONLY\s+)?{_table('execution')}(?:\s+(?:AS\s+)?(?!SET\b)\w+)?\s+SET\b(?P<set>.*?){_STATEMENT_END}",
    re.IGNORECASE,
)
STATUS_ASSIGNED = re.compile(r'(?:^|[\s,(.])"?status"?\s*=', re.IGNORECASE)
EXECUTION_INSERT = re.compile(rf"\b(?:INSERT|MERGE)\s+INTO\s+{_table('execution')}", re.IGNORECASE)
EVENT_INSERT = re.compile(rf"\bINSERT\s+INTO\s+{_table('event')}", re.IGNORECASE)


def writes_execution_status(text: str) -> bool:
    """Whether a SQL text creates an execution or sets its status."""
    if EXECUTION_INSERT.search(text):
        return True
    return any(STATUS_ASSIGNED.search(m.group("set")) for m in EXECUTION_UPDATE.finditer(text))


def status_writers(sources: list[Source]) -> list[str]:
    """Files outside the execution SQL module that hold SQL writing the execution status."""
    return sorted({s.path for s in sources if s.path != EXECUTIONS_SQL and any(map(writes_execution_status,
                                                                                     sql_texts(s)))})


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE attune.execution SET status = 'failed'",
        "update attune.execution set status='failed' where id = %s",
        "UPDATE attune.execution e\n   SET result = %(r)s,\n       status = %(to)s\n WHERE e.id = %(id)s",
        'UPDATE "attune"."execution" AS e SET finished = now(), "status" = \'canceled\'',
        "UPDATE execution SET status = %s",  # relying on search_path is still a write
        "UPDATE ONLY attune.execution SET status = 'failed'",
        "INSERT INTO attune.execution (tenant_id, action_ref, status) VALUES (1, 'a.b', 'running')",
        "insert into attune.execution as e (tenant_id) values (1)",
    ],
)
def test_the_status_checker_flags_a_status_write(sql: str) -> None:
    # GIVEN SQL that writes an execution's status WHEN checked THEN it is flagged
    assert writes_execution_status(" ".join(sql.split()))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id, status FROM attune.execution WHERE status = 'running'",
        "UPDATE attune.execution e SET heartbeat_at = clock_timestamp() WHERE e.status IN ('running')",
        "UPDATE attune.execution SET secret_parameters = %(s)s WHERE id = %(id)s RETURNING status",
        "UPDATE attune.execution_log SET status = 'x'",
        "UPDATE attune.enforcement SET status = %(status)s WHERE id = %(id)s",
        "INSERT INTO attune.execution_note (status) VALUES ('x')",
        "the lifecycle is the only code that changes `attune.execution.status`",
    ],
)
def test_the_status_checker_leaves_other_sql_alone(sql: str) -> None:
    # GIVEN SQL that reads executions, or writes something else WHEN checked THEN it is not flagged
    assert not writes_execution_status(sql)


def test_a_status_update_added_to_the_worker_would_be_caught() -> None:
    # GIVEN the worker's real source, with a status UPDATE added the ways one could write it
    worker = next(s for s in tree_sources() if s.path == "chalicelib/worker/service.py")
    variants = [
        "\nFAIL = \"UPDATE attune.execution SET status = 'failed'\"\n",
        '\nFAIL = """\nUPDATE attune.execution e\nSET result = %(r)s,\n'
        '    status = \'failed\'\nWHERE e.id = %(id)s\n"""\n',
        "\nFAIL = (\"UPDATE attune.execution \"\n        \"SET status = 'failed' WHERE id = %s\")\n",
        "\nFAIL = \"UPDATE attune.execution \" + \"SET status = 'failed'\"\n",
        "\nTABLE = 'x'\nFAIL = f\"UPDATE attune.execution SET status = '{TABLE}'\"\n",
        "\nADD = \"INSERT INTO attune.execution (tenant_id, action_ref) VALUES (1, 'x')\"\n",
    ]
    # THEN the unmodified file passes, and every modified one is reported by its path
    assert status_writers([worker]) == []
    for added in variants:
        assert status_writers([Source(worker.path, worker.text + added)]) == [worker.path], added
    # AND the same SQL inside the execution SQL module is allowed
    assert status_writers([Source(EXECUTIONS_SQL, variants[0])]) == []


def test_only_the_execution_sql_module_writes_execution_status() -> None:
    # GIVEN every production module and SQL file
    sources = tree_sources()
    # THEN none but chalicelib/db/executions.py holds SQL that writes the execution status
    assert status_writers(sources) == []
    # AND that module really is where the writes are (the checker sees them there)
    home = next(s for s in sources if s.path == EXECUTIONS_SQL)
    assert sum(writes_execution_status(t) for t in sql_texts(home)) >= 4  # insert, move, claim, retry


# -- who uses a module's functions -----------------------------------------------------------------
def _resolve(source: Source, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = source.package.split(".")
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join(base + ([node.module] if node.module else []))


def uses_of(source: Source, module: str, names: frozenset[str]) -> list[str]:
    """Where `source` imports or calls any of `names` from `module` (by import, alias or getattr)."""
    tree = ast.parse(source.text, filename=source.path)
    aliases: set[str] = set()  # local names bound to `module` itself
    found: list[str] = []
    parent, _, leaf = module.rpartition(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == module and a.asname:
                    aliases.add(a.asname)
                elif a.name == module or a.name.startswith(module + "."):
                    aliases.add(module)  # used as the dotted chain
        elif isinstance(node, ast.ImportFrom):
            origin = _resolve(source, node)
            for a in node.names:
                if origin == module and a.name in names:
                    found.append(f"{source.path}:{node.lineno} imports {a.name}")
                elif origin == parent and a.name == leaf:
                    aliases.add(a.asname or a.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names and ast.unparse(node.value) in aliases:
            found.append(f"{source.path}:{node.lineno} uses {ast.unparse(node)}")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                and len(node.args) >= 2 and ast.unparse(node.args[0]) in aliases
                and isinstance(node.args[1], ast.Constant) and node.args[1].value in names):
            found.append(f"{source.path}:{node.lineno} uses getattr(..., {node.args[1].value!r})")
    return found


def writer_uses(sources: list[Source]) -> list[str]:
    """Uses of the execution-writing functions outside the lifecycle package."""
    return [use for s in sources if s.path.endswith(".py") and not s.path.startswith(LIFECYCLE_PACKAGE)
            and s.path != EXECUTIONS_SQL for use in uses_of(s, "chalicelib.db.executions", WRITERS)]


@pytest.mark.parametrize(
    "code",
    [
        "from chalicelib.db.executions import move\n",
        "from chalicelib.db.executions import load_status, claim as take\n",
        "from chalicelib.db import executions as edb\n\ndef f(cur):\n"
        "    return edb.move(cur, 1, 2, to='failed', sources=[])\n",
        "from chalicelib.db import executions\nexecutions.insert_execution\n",
        "import chalicelib.db.executions\nchalicelib.db.executions.retry(None, 1, 2, sources=[])\n",
        "import chalicelib.db.executions as x\ngetattr(x, 'set_secret_parameters')(None, 1, 2, b'')\n",
    ],
)
def test_the_writer_checker_flags_a_use_outside_the_lifecycle(code: str) -> None:
    # GIVEN a worker module that reaches for a writing function WHEN checked THEN it is flagged
    assert writer_uses([Source("chalicelib/worker/service.py", code)])
    # AND the same code in the lifecycle package is allowed
    assert writer_uses([Source("chalicelib/executions/lifecycle.py", code)]) == []


def test_the_writer_checker_resolves_relative_imports() -> None:
    # GIVEN another db module importing the writer relatively WHEN checked THEN flagged
    assert writer_uses([Source("chalicelib/db/pipeline.py", "from .executions import move\n")])
    assert writer_uses([Source("chalicelib/db/pipeline.py", "from . import executions\nexecutions.claim\n")])


def test_the_writer_checker_allows_reads() -> None:
    # GIVEN modules that only read (the worker's load_for_run, the API's fields) WHEN checked THEN not flagged
    reads = "from chalicelib.db import executions as edb\nedb.load_for_run(None, 1, 2)\nedb.heartbeat(None, [])\n"
    assert writer_uses([Source("chalicelib/worker/service.py", reads)]) == []
    fields = "from chalicelib.db.executions import EXECUTION_FIELDS, EXECUTIONS, STATUSES\n"
    assert writer_uses([Source("chalicelib/api/executions.py", fields)]) == []


def test_only_the_lifecycle_calls_the_execution_writers() -> None:
    # GIVEN every production module
    sources = tree_sources((".py",))
    # THEN move/claim/retry/insert_execution/set_secret_parameters are used only in chalicelib/executions/
    assert writer_uses(sources) == []
    # AND the lifecycle does use them (the checker finds them where they are)
    lifecycle = [s for s in sources if s.path.startswith(LIFECYCLE_PACKAGE)]
    used = {u.rsplit(".", 1)[-1].split("(")[0] for s in lifecycle
            for u in uses_of(s, "chalicelib.db.executions", WRITERS)}
    assert used == WRITERS


# -- events ---------------------------------------------------------------------------------------
def event_creators(sources: list[Source]) -> list[str]:
    """Files but the events SQL holding `INSERT INTO attune.event`; callers of insert_event but emit_event."""
    found = [s.path for s in sources if s.path != EVENTS_SQL and any(EVENT_INSERT.search(t) for t in sql_texts(s))]
    found += [use for s in sources if s.path.endswith(".py") and s.path != EMIT_EVENT
              for use in uses_of(s, "chalicelib.db.pipeline", frozenset({"insert_event"}))]
    return found


def test_the_event_checker_flags_another_way_in() -> None:
    # GIVEN a webhook module that stores an event itself WHEN checked THEN flagged, either way
    sql = 'EVENT = """\nINSERT INTO attune.event\n  (tenant_id, trigger_id, payload) VALUES (1, 2, \'{}\')"""\n'
    call = "from chalicelib.db.pipeline import insert_event\ninsert_event(None, 1, 2, {})\n"
    assert event_creators([Source("chalicelib/pipeline/webhooks.py", sql)])
    assert event_creators([Source("chalicelib/timers/fire.py", call)])
    # AND enforcements or reads of events are not event creation
    other = "X = 'INSERT INTO attune.enforcement (event_id) VALUES (1)'\nY = 'SELECT * FROM attune.event'\n"
    assert event_creators([Source("chalicelib/pipeline/rules_engine.py", other)]) == []
    assert event_creators([Source(EMIT_EVENT, call)]) == []


def test_only_emit_event_creates_events() -> None:
    # GIVEN every production module THEN the event INSERT is only in db/pipeline.py and only emit_event calls it
    sources = tree_sources()
    assert event_creators(sources) == []
    assert uses_of(next(s for s in sources if s.path == EMIT_EVENT), "chalicelib.db.pipeline",
                   frozenset({"insert_event"})), "emit_event stores the event through insert_event"


# -- AWS clients ----------------------------------------------------------------------------------
def direct_aws(source: Source) -> list[str]:
    """boto3/botocore imports and `client("sqs")` / `resource("sqs")` calls in a module."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source.text, filename=source.path)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            modules = [node.module or ""]
        found += [f"{source.path}:{getattr(node, 'lineno', 0)} imports {m}" for m in modules
                  if m.split(".")[0] in ("boto3", "botocore", "aiobotocore")]
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            first = node.args[0]
            if name in ("client", "resource") and isinstance(first, ast.Constant) and first.value == "sqs":
                found.append(f"{source.path}:{node.lineno} calls {name}('sqs')")
    return found


def aws_outside_adapters(sources: list[Source]) -> list[str]:
    return [use for s in sources if s.path.endswith(".py") and not s.path.startswith(AWS_ADAPTERS)
            for use in direct_aws(s)]


def test_the_aws_checker_flags_direct_clients() -> None:
    # GIVEN a worker module that builds its own SQS client WHEN checked THEN flagged, each way
    for code in ("import boto3\nboto3.client('sqs').send_message()\n",
                 "from chalicelib.aws.clients import client\nclient('sqs').send_message(QueueUrl='q')\n",
                 "from botocore.config import Config\n"):
        assert aws_outside_adapters([Source("chalicelib/worker/service.py", code)]), code
    # AND the adapters themselves may
    assert aws_outside_adapters([Source("chalicelib/aws/queues.py", "import boto3\nboto3.client('sqs')\n")]) == []


def test_only_the_aws_and_local_adapters_use_boto3_or_sqs_directly() -> None:
    # GIVEN every production module THEN none outside chalicelib/aws/ and chalicelib/local/ goes to boto3/SQS itself
    assert aws_outside_adapters(tree_sources((".py",))) == []


# -- API view modules ------------------------------------------------------------------------------
def api_view_imports(sources: list[Source]) -> list[str]:
    """Imports of an API view module by another API module (helpers context/params/serialize/openapi allowed)."""
    found: list[str] = []
    views = {s.module.rpartition(".")[2] for s in sources if s.path.startswith("chalicelib/api/")} - API_HELPERS
    views.discard("api")  # the package's __init__
    for s in sources:
        if not (s.path.startswith("chalicelib/api/") and s.path.endswith(".py")):
            continue
        for node in ast.walk(ast.parse(s.text, filename=s.path)):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                origin = _resolve(s, node)
                targets = [origin] + [f"{origin}.{a.name}" for a in node.names]
            for target in targets:
                head, _, leaf = target.rpartition(".")
                if head == "chalicelib.api" and leaf in views and leaf != s.module.rpartition(".")[2]:
                    found.append(f"{s.path}:{getattr(node, 'lineno', 0)} imports view module {leaf}")
    return found


def test_the_api_checker_flags_a_view_importing_a_view() -> None:
    # GIVEN the API package where rules.py reaches into the triggers view, three ways
    base = [Source("chalicelib/api/triggers.py", "x = 1\n"), Source("chalicelib/api/context.py", "y = 1\n")]
    for code in ("from chalicelib.api.triggers import x\n", "from chalicelib.api import triggers\n",
                 "from . import triggers\n", "from .triggers import x\n", "import chalicelib.api.triggers\n"):
        assert api_view_imports([*base, Source("chalicelib/api/rules.py", code)]), code
    # AND the shared helpers may be imported
    ok = "from chalicelib.api.context import Call\nfrom chalicelib.api import context\nfrom . import params\n"
    assert api_view_imports([*base, Source("chalicelib/api/rules.py", ok)]) == []


def test_no_api_view_module_imports_another_view_module() -> None:
    # GIVEN every module of chalicelib/api THEN views import only context, params, serialize, openapi
    sources = [s for s in tree_sources((".py",)) if s.path.startswith("chalicelib/api/")]
    assert len(sources) > len(API_HELPERS) + 1
    assert api_view_imports(sources) == []


# -- API views stay thin: no transactions, crypto or queue calls -----------------------------
# What a view may not reach for itself; `context.py` is the decorator that owns the request's
# tenant transaction, so it alone may open one.
VIEW_FORBIDDEN = {
    "chalicelib.db.pool": {"system_tx", "tenant_tx", "connection"},
    "chalicelib.envelope": None,  # None: the whole module
    "chalicelib.aws.kms": None,
    "chalicelib.core.crypto": None,
    "chalicelib.aws.queues": None,
    "chalicelib.aws.clients": None,
    "chalicelib.pipeline.outbox": {"publish", "enqueue", "relay_once"},
}


def fat_view_imports(sources: list[Source]) -> list[str]:
    """Imports in API view modules of transactions, crypto or queue sends (context.py excepted)."""
    found: list[str] = []
    for s in sources:
        if not (s.path.startswith("chalicelib/api/") and s.path.endswith(".py")) or s.path.endswith("/context.py"):
            continue
        for node in ast.walk(ast.parse(s.text, filename=s.path)):
            if isinstance(node, ast.ImportFrom):
                origin = _resolve(s, node)
                for alias in node.names:
                    for module, names in VIEW_FORBIDDEN.items():
                        whole = f"{origin}.{alias.name}" == module
                        if whole or (origin == module and (names is None or alias.name in names)):
                            found.append(f"{s.path}:{node.lineno} imports {origin}.{alias.name}")
            elif isinstance(node, ast.Import):
                found += [f"{s.path}:{node.lineno} imports {a.name}" for a in node.names if a.name in VIEW_FORBIDDEN]
    return found


def test_the_fat_view_checker_flags_a_transaction_a_seal_and_a_send() -> None:
    for code in ("from chalicelib.db.pool import system_tx\n", "from chalicelib import envelope\n",
                 "from chalicelib.pipeline.outbox import publish\n", "import chalicelib.aws.queues\n",
                 "from chalicelib.aws import kms\n"):
        assert fat_view_imports([Source("chalicelib/api/webhooks.py", code)]), code
    assert fat_view_imports([Source("chalicelib/api/webhooks.py", "from chalicelib.db.pool import Cursor\n")]) == []


def test_api_views_open_no_transaction_and_do_no_crypto_or_sends() -> None:
    sources = [s for s in tree_sources((".py",)) if s.path.startswith("chalicelib/api/")]
    assert fat_view_imports(sources) == []

"""The seed's test report (e2e-test-plan.md, "Test Reporting"): a pytest plugin for `make e2e-report`.

    python -m pytest -p tests.e2e.report --e2e-report-json=.attune/e2e-report.json \
        tests/e2e/tier1 tests/e2e/tier2 tests/e2e/tier3

Each scenario is one test file (`test_t1_1_interval_timer.py` is T1.1); its
status is ❌ when any of its tests failed (or errored in setup/teardown),
⏭️ when all were skipped, else ✅, and its time is the sum of its tests'
own run time (the call phase: the first test's setup also starts the
session's cloud, which is in the total duration, not in any one test's).
The report is printed in the seed's format after the run and written as JSON
(the same facts, plus every test function), so CI can keep it. Files that are
not seed scenarios (the README walk-through, the platform's own barriers) are
reported under their module names in their tier.
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

TIERS = {"tier1": "Core Flows", "tier2": "Orchestration", "tier3": "Advanced"}
ICONS = {"passed": "✅", "failed": "❌", "skipped": "⏭️"}
DEFAULT_JSON = ".attune/e2e-report.json"
_SCENARIO_FILE = re.compile(r"^test_t(\d+)_(\d+)_")
_SHORT = 60


@dataclass
class CaseResult:
    """One test function: what pytest reported for it across setup, call and teardown."""

    nodeid: str
    outcome: str = "passed"
    duration_s: float = 0.0
    message: str | None = None
    logs: str | None = None


@dataclass
class Scenario:
    """One seed scenario (one test file) and its tests."""

    key: str
    name: str
    tier: str
    path: str
    tests: list[CaseResult] = field(default_factory=list)

    @property
    def status(self) -> str:
        """failed if any test failed; skipped if every test was skipped; else passed."""
        outcomes = {t.outcome for t in self.tests}
        if "failed" in outcomes:
            return "failed"
        return "skipped" if outcomes == {"skipped"} else "passed"

    @property
    def duration_s(self) -> float:
        """The scenario's time: its tests' time together."""
        return sum(t.duration_s for t in self.tests)

    def first(self, outcome: str) -> CaseResult | None:
        """The first test with `outcome` (the failure or skip the report names)."""
        return next((t for t in self.tests if t.outcome == outcome), None)


def scenario_key(path: str, docstring: str | None) -> tuple[str, str]:
    """`("T1.1", "Interval timer automation")` from a test file and its docstring's first line."""
    stem = Path(path).stem
    first = (docstring or "").strip().splitlines()[0] if (docstring or "").strip() else ""
    found = _SCENARIO_FILE.match(stem)
    if found is None:
        return stem.removeprefix("test_"), first.split(":")[0].rstrip(".") or stem
    key = f"T{found.group(1)}.{found.group(2)}"
    name = first.removeprefix(key).strip().split(":")[0].strip().rstrip(".")
    return key, name or stem


def _order(scenario: Scenario) -> tuple[Any, ...]:
    numbers = re.findall(r"\d+", scenario.key) if scenario.key.startswith("T") else []
    return (scenario.tier, 0 if numbers else 1, [int(n) for n in numbers], scenario.key)


def _percent(part: int, whole: int) -> str:
    value = round(100.0 * part / whole, 1) if whole else 0.0
    return f"{value:g}%"


def _duration(seconds: float) -> str:
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "hour"), (minutes, "minute"), (secs, "second")]
    shown = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n] or ["0 seconds"]
    return " ".join(shown)


def _short(message: str | None) -> str:
    text = (message or "error").strip().splitlines()[0] if (message or "").strip() else "error"
    return text if len(text) <= _SHORT else text[: _SHORT - 1] + "…"


def render(scenarios: Iterable[Scenario], *, started: datetime, duration_s: float) -> str:
    """The report in the seed's format."""
    ordered = sorted(scenarios, key=_order)
    lines = ["=== Attune E2E Test Report ===", f"Date: {started:%Y-%m-%d %H:%M:%S}",
             f"Duration: {_duration(duration_s)}"]
    for tier, label in TIERS.items():
        members = [s for s in ordered if s.tier == tier]
        if not members:
            continue
        lines.append(f"Tier {tier.removeprefix('tier')}: {label} ({len(members)} tests)")
        for s in members:
            named = s.first(s.status)
            if s.status == "passed":
                detail = f"{s.duration_s:.1f}s"
            else:
                detail = f"{s.status.upper()} - {_short(named.message if named else None)}"
            lines.append(f"{ICONS[s.status]} {s.key} {s.name} ({detail})")
    counts = {status: sum(1 for s in ordered if s.status == status) for status in ICONS}
    total = len(ordered)
    lines += ["Summary:", f"Total: {total} tests",
              f"Passed: {counts['passed']} ({_percent(counts['passed'], total)})",
              f"Failed: {counts['failed']} ({_percent(counts['failed'], total)})",
              f"Skipped: {counts['skipped']} ({_percent(counts['skipped'], total)})",
              f"Success Rate: {_percent(counts['passed'], total)}"]
    failed = [s for s in ordered if s.status == "failed"]
    if failed:
        lines.append("Failed Tests:")
        for s in failed:
            test = s.first("failed")
            lines += [f"{s.key}: {s.name}", f"Error: {test.message if test else 'error'}"]
            if test is not None and test.logs:
                lines.append(f"Logs: {test.logs}")
    skipped = [s for s in ordered if s.status == "skipped"]
    if skipped:
        lines.append("Skipped Tests:")
        for s in skipped:
            test = s.first("skipped")
            lines.append(f"{s.key}: {s.name} - {test.message if test else 'skipped'}")
    return "\n".join(lines)


def as_json(scenarios: Iterable[Scenario], *, started: datetime, duration_s: float) -> dict[str, Any]:
    """The same report as data (scenarios with their tests)."""
    ordered = sorted(scenarios, key=_order)
    counts = {status: sum(1 for s in ordered if s.status == status) for status in ICONS}
    return {
        "date": started.isoformat(timespec="seconds"), "duration_s": round(duration_s, 3),
        "summary": {"total": len(ordered), **counts,
                    "success_rate": round(100.0 * counts["passed"] / len(ordered), 1) if ordered else 0.0},
        "scenarios": [{"key": s.key, "name": s.name, "tier": s.tier, "path": s.path, "status": s.status,
                       "duration_s": round(s.duration_s, 3), "tests": [asdict(t) for t in s.tests]}
                      for s in ordered],
    }


def _docstring(path: Path) -> str | None:
    try:
        return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (OSError, SyntaxError, ValueError):
        return None


def _message(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (file, line, reason)
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return str(crash.message).strip()
    text = str(longrepr).strip().splitlines()
    return text[-1] if text else report.outcome


class ReportPlugin:
    """Collects every test's outcome by scenario, then prints and writes the report."""

    def __init__(self, json_path: Path) -> None:
        self.json_path = json_path
        self.started = datetime.now()
        self.clock = time.monotonic()
        self.scenarios: dict[str, Scenario] = {}
        self.results: dict[str, CaseResult] = {}

    def _scenario(self, path: Path) -> Scenario:
        found = self.scenarios.get(str(path))
        if found is None:
            key, name = scenario_key(str(path), _docstring(path))
            tier = next((p for p in path.parts if p in TIERS), "other")
            found = self.scenarios[str(path)] = Scenario(key, name, tier, path.as_posix())
        return found

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A test file skipped or broken as a whole (a module-level skip, an import error) is a scenario too."""
        path = Path(str(report.fspath))
        if path.suffix != ".py" or not (report.skipped or report.failed) or report.nodeid in self.results:
            return
        result = self.results[report.nodeid] = CaseResult(
            report.nodeid, "skipped" if report.skipped else "failed", 0.0, _message(report))
        self._scenario(path).tests.append(result)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        """Note which scenario a test belongs to, and where the cloud's log is (for a failure)."""
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        scenario = self._scenario(Path(str(item.path)))
        result = self.results.get(report.nodeid)
        if result is None:
            result = self.results[report.nodeid] = CaseResult(report.nodeid)
            scenario.tests.append(result)
        cloud = getattr(item, "funcargs", {}).get("cloud")
        log_path = getattr(cloud, "log_path", None)
        if log_path is not None:
            result.logs = str(log_path)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Fold setup, call and teardown into one outcome per test."""
        result = self.results.get(report.nodeid)
        if result is None:
            return
        if report.when == "call":  # setup may include starting the session's cloud: not this test's time
            result.duration_s += report.duration
        if report.failed and result.outcome != "failed":
            result.outcome, result.message = "failed", _message(report)
        elif report.skipped and result.outcome == "passed":
            result.outcome, result.message = "skipped", _message(report)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Print the report and write its JSON."""
        duration = time.monotonic() - self.clock
        scenarios = list(self.scenarios.values())
        terminalreporter.write_line("")
        for line in render(scenarios, started=self.started, duration_s=duration).splitlines():
            terminalreporter.write_line(line)
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        doc = as_json(scenarios, started=self.started, duration_s=duration)
        self.json_path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        terminalreporter.write_line(f"JSON report: {self.json_path}")


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--e2e-report-json PATH`: where the JSON report goes."""
    parser.addoption("--e2e-report-json", default=DEFAULT_JSON, help="where to write the e2e report as JSON")


def pytest_configure(config: pytest.Config) -> None:
    """Register the collector (this module is loaded with `-p tests.e2e.report`)."""
    config.pluginmanager.register(ReportPlugin(Path(config.getoption("--e2e-report-json"))), "attune-e2e-report")

"""`make e2e-report`: the seed's report format, from scenarios and their tests. Pure."""

from __future__ import annotations

from datetime import datetime

from tests.e2e.report import CaseResult, Scenario, as_json, render, scenario_key

STARTED = datetime(2026, 1, 27, 10, 30, 0)


def test_scenario_names_come_from_the_file_and_its_docstring() -> None:
    assert scenario_key("tests/e2e/tier1/test_t1_1_interval_timer.py",
                        "T1.1 Interval timer automation: a 5 s timer fires every 5 s.") == (
        "T1.1", "Interval timer automation")
    assert scenario_key("tests/e2e/tier3/test_t3_17_container_runner.py", "T3.17 Container runner: ...")[0] == "T3.17"
    assert scenario_key("tests/e2e/tier3/test_platform_barriers.py", "Issue 9: the platform's internals.") == (
        "platform_barriers", "Issue 9")


def test_the_report_reads_as_the_seed_writes_it() -> None:
    scenarios = [
        Scenario("T1.2", "Date Timer Execution", "tier1", "a", [CaseResult("a::t", "passed", 9.1)]),
        Scenario("T1.1", "Interval Timer Automation", "tier1", "b",
                 [CaseResult("b::x", "passed", 20.0), CaseResult("b::y", "passed", 8.3)]),
        Scenario("T2.3", "Datastore Write", "tier2", "c",
                 [CaseResult("c::t", "failed", 30.2, "Execution timeout after 30 seconds", "/tmp/cloud.log")]),
        Scenario("T3.17", "Container Runner", "tier3", "d",
                 [CaseResult("d::t", "skipped", 0.0, "Docker not available")]),
        Scenario("T3.10", "RBAC", "tier3", "e", [CaseResult("e::t", "passed", 1.0)]),
    ]
    text = render(scenarios, started=STARTED, duration_s=932)
    assert text.splitlines() == [
        "=== Attune E2E Test Report ===",
        "Date: 2026-01-27 10:30:00",
        "Duration: 15 minutes 32 seconds",
        "Tier 1: Core Flows (2 tests)",
        "✅ T1.1 Interval Timer Automation (28.3s)",
        "✅ T1.2 Date Timer Execution (9.1s)",
        "Tier 2: Orchestration (1 tests)",
        "❌ T2.3 Datastore Write (FAILED - Execution timeout after 30 seconds)",
        "Tier 3: Advanced (2 tests)",
        "✅ T3.10 RBAC (1.0s)",
        "⏭️ T3.17 Container Runner (SKIPPED - Docker not available)",
        "Summary:",
        "Total: 5 tests",
        "Passed: 3 (60%)",
        "Failed: 1 (20%)",
        "Skipped: 1 (20%)",
        "Success Rate: 60%",
        "Failed Tests:",
        "T2.3: Datastore Write",
        "Error: Execution timeout after 30 seconds",
        "Logs: /tmp/cloud.log",
        "Skipped Tests:",
        "T3.17: Container Runner - Docker not available",
    ]
    doc = as_json(scenarios, started=STARTED, duration_s=932)
    assert doc["summary"] == {"total": 5, "passed": 3, "failed": 1, "skipped": 1, "success_rate": 60.0}
    assert [s["key"] for s in doc["scenarios"]] == ["T1.1", "T1.2", "T2.3", "T3.10", "T3.17"]

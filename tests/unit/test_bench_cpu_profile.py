"""The CPU profile divides each process's CPU by the executions and leaves the emulators out of the bill."""

from __future__ import annotations

from bench.cpu_profile import Sample, calls_per_execution, per_execution


def test_cpu_per_execution_splits_own_and_children_and_bills_roles_only() -> None:
    # GIVEN CPU seconds before and after 100 executions
    before = Sample(own={"moto": 1.0, "worker": 2.0, "postgres": 0.5, "supervisor": 0.1},
                    children={"moto": 0.0, "worker": 0.3, "postgres": 0.0, "supervisor": 0.0})
    after = Sample(own={"moto": 2.5, "worker": 2.6, "postgres": 0.9, "supervisor": 0.2},
                   children={"moto": 0.0, "worker": 0.5, "postgres": 0.0, "supervisor": 0.0})
    # WHEN the profile is taken
    result = per_execution(before, after, 100)
    # THEN each process's ms per execution, the total, and Lambda's bill (the worker alone here)
    rows = result["cpu_ms_per_execution"]
    assert rows["moto"] == {"own_ms": 15.0, "children_ms": 0.0}
    assert rows["worker"] == {"own_ms": 6.0, "children_ms": 2.0}
    assert next(iter(rows)) == "moto"  # the most expensive first
    assert result["total_ms"] == 28.0 and result["emulators_ms"] == 19.0
    assert result["aws_billable_ms"]["by_role"] == {"worker": 8.0}


def test_no_executions_is_no_profile() -> None:
    empty = Sample(own={}, children={})
    assert per_execution(empty, empty, 0) == {"executions": 0}


def test_emulator_calls_per_execution_by_action() -> None:
    before = {"sqs:ReceiveMessage": 10, "sqs:SendMessageBatch": 4}
    after = {"sqs:ReceiveMessage": 60, "sqs:SendMessageBatch": 24, "sqs:DeleteMessageBatch": 50, "kms:Decrypt": 1}
    result = calls_per_execution(before, after, 100)
    assert result["by_action"]["sqs:ReceiveMessage"] == 0.5
    assert result["sqs_total"] == 1.2 and result["total"] == 1.21

"""T2.10 Parallel with-items: five `core.sleep` children of 2 s under concurrency 1, 3 and unlimited.

Measured from the children's own `started`/`finished`: concurrency 1 runs
them one at a time (~10 s, no two overlap), 3 never runs more than three at
once (~4 s), unlimited runs all five together (~2 s).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.client import Cloud
from tests.e2e.workflow_flow import (
    assert_sequential,
    at,
    children,
    create_workflow,
    max_overlap,
    new_pack,
    of_task,
    run_workflow,
    span,
    task_entries,
)

SLEEP_S = 2
ITEMS = ["a", "b", "c", "d", "e"]


def _run(cloud: Cloud, concurrency: int | str | None) -> list[dict[str, Any]]:
    """Run the fan-out (concurrency None: left out); its children, by start."""
    user = cloud.register("t210")
    pack = new_pack(user, "t210")
    task: dict[str, Any] = {"name": "nap", "action": "core.sleep", "with_items": "{{ parameters.items }}",
                            "input": {"seconds": SLEEP_S}}
    if concurrency is not None:
        task["concurrency"] = concurrency
    ref = create_workflow(user, pack, "fanout", [task], parameters={"items": {"type": "array", "required": True}})
    workflow = run_workflow(user, ref, {"items": ITEMS}, timeout=60)
    assert workflow["status"] == "succeeded", str(workflow)
    kids = of_task(children(user, workflow["id"]), "nap")
    # every item ran once, as its own child, and succeeded
    assert sorted(k["item_index"] for k in kids) == list(range(len(ITEMS))), str(kids)
    assert all(k["status"] == "succeeded" for k in kids), str(kids)
    for kid in kids:
        assert (at(kid["finished"]) - at(kid["started"])).total_seconds() >= SLEEP_S - 0.05, str(kid)
    assert sorted(task_entries(workflow)["nap"]["executions"]) == sorted(k["id"] for k in kids)
    # the workflow ended after its last child
    assert at(workflow["finished"]) >= max(at(k["finished"]) for k in kids)
    return sorted(kids, key=lambda k: at(k["started"]))


def test_concurrency_1_is_sequential(cloud: Cloud) -> None:
    kids = _run(cloud, 1)
    assert_sequential(kids)
    assert max_overlap(kids) == 1
    assert span(kids) >= 9.5, span(kids)


def test_concurrency_3_limits_parallelism(cloud: Cloud) -> None:
    kids = _run(cloud, 3)
    assert max_overlap(kids) <= 3, [(k["started"], k["finished"]) for k in kids]
    # three at once, then two: two rounds of 2 s, well under the sequential 10 s
    assert max_overlap(kids) >= 2, [(k["started"], k["finished"]) for k in kids]
    assert 3.8 <= span(kids) < 8, span(kids)


@pytest.mark.parametrize("concurrency", ["unlimited", None], ids=["unlimited", "absent"])
def test_unlimited_runs_all_at_once(cloud: Cloud, concurrency: str | None) -> None:
    kids = _run(cloud, concurrency)
    assert max_overlap(kids) == len(ITEMS), [(k["started"], k["finished"]) for k in kids]
    assert span(kids) < 5, span(kids)


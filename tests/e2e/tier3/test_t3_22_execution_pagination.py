"""T3.22 Execution history pagination: 100 executions, pages of 20, accurate totals, no duplicates, no gaps.

Paged once while the executions are still moving through their statuses and
once after they all finished: newest first (by id, created non-increasing),
the same order both times.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.e2e.client import Cloud, User
from tests.e2e.flow import poll

COUNT = 100
PAGE = 20


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _page_through(user: User, **filters: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for offset in range(0, COUNT, PAGE):
        resp = user.get("/api/v1/executions", params={"limit": PAGE, "offset": offset, **filters})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["total"] == COUNT, (offset, body["total"])
        assert body["limit"] == PAGE and body["offset"] == offset
        assert len(body["items"]) == PAGE, (offset, len(body["items"]))
        seen += body["items"]
    past_the_end = user.get("/api/v1/executions", params={"limit": PAGE, "offset": COUNT, **filters}).json()
    assert past_the_end["items"] == [] and past_the_end["total"] == COUNT
    return seen


def _assert_ordered(page: list[dict[str, Any]], created_ids: list[int]) -> None:
    ids = [x["id"] for x in page]
    assert len(set(ids)) == COUNT, "duplicates across pages"
    assert set(ids) == set(created_ids), "executions missing from the pages"
    assert ids == sorted(ids, reverse=True), "not newest first"
    created = [_at(x["created"]) for x in page]
    assert created == sorted(created, reverse=True), "created not in descending order"


def test_paging_through_100_executions(cloud: Cloud) -> None:
    # GIVEN 100 executions created rapidly in a fresh tenant
    user = cloud.register("t322")
    created_ids = []
    for i in range(COUNT):
        resp = user.post("/api/v1/executions", {"action_ref": "core.echo", "parameters": {"message": f"m{i}"}})
        assert resp.status_code == 201, resp.text
        created_ids.append(resp.json()["id"])

    # WHEN paged with limit=20 while they run THEN 5 full pages, total 100, no duplicates, no gaps, newest first
    first_pass = _page_through(user)
    _assert_ordered(first_pass, created_ids)
    # AND the first page starts with the last one created
    assert first_pass[0]["id"] == created_ids[-1] and first_pass[-1]["id"] == created_ids[0]

    # WHEN they have all finished
    poll(
        lambda: user.get("/api/v1/executions", params={"status": "succeeded", "limit": 1}).json()["total"] == COUNT,
        "all 100 executions to succeed",
        cloud,
        timeout=180,
    )
    # THEN paging again gives the same order, and filtering keeps the counts right
    second_pass = _page_through(user)
    _assert_ordered(second_pass, created_ids)
    assert [x["id"] for x in second_pass] == [x["id"] for x in first_pass]
    by_action = _page_through(user, action_ref="core.echo")
    assert [x["id"] for x in by_action] == [x["id"] for x in first_pass]
    assert {x["result"]["output"]["message"] for x in second_pass} == {f"m{i}" for i in range(COUNT)}

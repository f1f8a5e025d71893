"""Worker slots: a bound on concurrent actions, back-pressure, and a shutdown that turns work away."""

from __future__ import annotations

import threading

import pytest

from chalicelib.worker.slots import Run, Slots, WorkerStopping


def test_acquire_waits_for_a_free_slot_and_close_refuses_new_work() -> None:
    # GIVEN two slots, both running work that waits to be released
    slots = Slots(2)
    gate = threading.Event()
    runs = [slots.start(slots.acquire(), f"t{i}", lambda run: gate.wait(5)) for i in range(2)]
    assert {r.slot for r in runs} == {0, 1} and slots.busy() == 2
    # WHEN a third caller asks for a slot
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(slots.acquire()))
    waiter.start()
    waiter.join(0.2)
    # THEN it waits until one frees up
    assert waiter.is_alive() and got == []
    gate.set()
    waiter.join(5)
    assert got and got[0] in (0, 1)
    slots.release(got[0])
    assert slots.wait_idle(5)
    # AND once closed, acquiring raises WorkerStopping
    slots.close()
    with pytest.raises(WorkerStopping):
        slots.acquire()


def test_close_wakes_a_waiting_caller() -> None:
    slots = Slots(1)
    slot = slots.acquire()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            slots.acquire()
        except WorkerStopping as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    slots.close()
    waiter.join(5)
    assert len(errors) == 1
    slots.release(slot)


def test_abort_all_stops_running_work_with_a_reason() -> None:
    # GIVEN a run that waits for its cancel event
    slots = Slots(1)
    seen: list[Run] = []

    def work(run: Run) -> None:
        seen.append(run)
        run.cancel.wait(5)

    slots.start(slots.acquire(), "t", work)
    # WHEN the worker gives up waiting at shutdown
    assert slots.abort_all("shutting down") == 1
    # THEN the run was told why and its slot freed
    assert slots.wait_idle(5)
    assert seen[0].aborted == "shutting down" and seen[0].cancel.is_set()

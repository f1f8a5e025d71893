"""Shell actions exec'd in their tenant's zygote sandbox instead of a bwrap sandbox of their own.

Parity: every shell test of test_runners.py and test_shell_params.py runs
again with a tenant in the context, so each execution is forked by a zygote
and exec'd there (checked), and must pass unchanged: output, exit codes and
signals, timeouts and cancel that kill the whole group, leftovers killed,
the clean environment, parameters on stdin and as files. Then what is new:
a pipeline whose reader goes still ends (SIGPIPE is back to its default
after the exec), a missing interpreter fails as a cold start does, and one
tenant's shell and python3 actions share one zygote that another tenant's
never see.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from chalicelib.runners import RunResult, sandbox
from tests.integration import test_runners as cold
from tests.integration import test_shell_params as params
from tests.integration.test_python_zygote import OTHER_TENANT, TENANT, _run, _zygotes, forked, fresh_pool
from tests.integration.test_runners import beacon, stub_api

pytestmark = pytest.mark.skipif(not sandbox.available(), reason="bubblewrap cannot run here: no zygote")
__all__ = ["beacon", "forked", "fresh_pool", "stub_api"]  # fixtures the reused tests ask for


def _tests(module: Any, naming: str = "") -> list[str]:
    """The module's tests whose source contains `naming` (test_runners': those that run shell actions)."""
    return [name for name, fn in vars(module).items()
            if name.startswith("test_") and callable(fn) and naming in inspect.getsource(fn)]


# (the last is about bwrap's own start handshake, which a zygote-forked action does not go through)
COLD = [n for n in _tests(cold, '"shell"')
        if n != "test_a_sandbox_whose_worker_is_gone_before_the_limits_never_starts_its_command"]
PARAMS = _tests(params)
# Tests whose point is that nothing starts (so no execution reaches a zygote either).
STARTS_NOTHING = {"test_cancel_set_before_start_starts_nothing", "test_entry_point_escapes_are_rejected"}


def _with_tenant(real: Any) -> Any:
    """`real` (a module's `_run` helper), with this file's tenant in every request's context."""
    def run(*args: Any, **fields: Any) -> RunResult:
        context = dict(fields.pop("context", None) or {})
        context.setdefault("tenant_id", TENANT)
        return real(*args, context=context, **fields)  # type: ignore[no-any-return]

    return run


@pytest.mark.parametrize("name", COLD)
def test_the_cold_shell_tests_pass_in_a_zygote(name: str, request: pytest.FixtureRequest,
                                               monkeypatch: pytest.MonkeyPatch, forked: list[int]) -> None:
    monkeypatch.setattr(cold, "_run", _with_tenant(cold._run))
    test = getattr(cold, name)
    args = {param: request.getfixturevalue(param) for param in inspect.signature(test).parameters}
    test(**args)
    assert bool(forked) is (name not in STARTS_NOTHING), forked


@pytest.mark.parametrize("name", PARAMS)
def test_the_parameter_file_tests_pass_in_a_zygote(name: str, request: pytest.FixtureRequest,
                                                   monkeypatch: pytest.MonkeyPatch, forked: list[int]) -> None:
    monkeypatch.setattr(params, "_run", _with_tenant(params._run))
    test = getattr(params, name)
    args = {param: request.getfixturevalue(param) for param in inspect.signature(test).parameters}
    test(**args)
    assert forked, "no execution went through a zygote"


def test_a_pipeline_ends_when_its_reader_goes(forked: list[int]) -> None:
    # GIVEN a writer that never stops, piped into a reader that takes one line (SIGPIPE must kill `yes`)
    result = _run("shell", code="yes | head -n 1; echo \"status ${PIPESTATUS[0]}\"\n", timeout_s=10)
    # THEN the pipeline ended at once, `yes` killed by SIGPIPE (141), not looping on EPIPE errors
    assert result.status == "succeeded", result
    assert result.stdout == "y\nstatus 141\n"
    assert forked


def test_a_missing_interpreter_fails_as_a_cold_start_does(forked: list[int]) -> None:
    result = _run("shell", code="#!/no/such/interpreter\necho hi\n")
    assert result.status == "failed"
    assert "could not start the action" in (result.error or ""), result
    assert not forked or result.exit_code is None


def test_one_tenant_shares_one_zygote_between_its_shell_and_python3_actions(forked: list[int]) -> None:
    # GIVEN a tenant's shell and python3 actions, and another tenant's shell action
    mine = [_run("shell", code="echo $$ >/dev/null; ps -e -o comm= | sort -u\n"),
            _run("python3", code="def run():\n    return 1\n")]
    theirs = _run("shell", code="ls /tmp; echo done\n", tenant=OTHER_TENANT)
    # THEN the first two ran in one zygote, the other tenant's in its own
    assert all(r.status == "succeeded" for r in [*mine, theirs]), [*mine, theirs]
    assert len(_zygotes(TENANT)) == 1 and len(_zygotes(OTHER_TENANT)) == 1
    assert _zygotes(TENANT)[0].uid != _zygotes(OTHER_TENANT)[0].uid
    assert len(forked) == 3

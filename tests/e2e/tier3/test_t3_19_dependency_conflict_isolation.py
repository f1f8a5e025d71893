"""T3.19 Dependency conflict isolation: packs pinning requests 2.25.0 and 2.28.0 run, even at once, each its own.

Each action reports the requests version it imported (`requests.__version__`)
from its pack's virtualenv, run one after the other and then concurrently.
"""

from __future__ import annotations

from tests.e2e.client import Cloud
from tests.e2e.flow import register_pack, run_action, unique_ref, wait_final
from tests.e2e.tier2.test_t2_12_python_dependencies import hello_url, pack_files

__all__ = ["hello_url"]  # the fixture, shared with T2.12


def test_two_packs_with_conflicting_pins_run_side_by_side(cloud: Cloud, hello_url: str) -> None:
    user = cloud.register("t319")
    refs = {pin: unique_ref(f"req{pin.replace('.', '')}") for pin in ("2.25.0", "2.28.0")}
    for pin, ref in refs.items():
        register_pack(user, ref, {**pack_files(pin), "pack.yaml": f"ref: {ref}\nversion: 1.0.0\n"})
    # WHEN each runs alone THEN each imported its own pin
    for pin, ref in refs.items():
        alone = run_action(user, f"{ref}.http_call", {"url": hello_url})
        assert alone["status"] == "succeeded", alone["result"]
        assert alone["result"]["output"]["requests"] == pin
    # WHEN both run at once, several times THEN no run saw the other's library
    started = []
    for _ in range(3):
        for pin, ref in refs.items():
            resp = user.post("/api/v1/executions", {"action_ref": f"{ref}.http_call", "parameters": {"url": hello_url}})
            assert resp.status_code == 201, resp.text
            started.append((pin, resp.json()["id"]))
    for pin, execution_id in started:
        done = wait_final(user, execution_id)
        assert done["status"] == "succeeded", done["result"]
        assert done["result"]["output"]["requests"] == pin and done["result"]["output"]["status"] == 200

"""T2.13 Node.js action: the seed's axios action, its pack's package.json installed, run sandboxed.

`module.exports = { run }` with `async run(params)`; the return value is the
result. The pack's `node_modules` is built once from its package.json and is
the pack's own (NODE_PATH), so the action can `require('axios')`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from tests.e2e.client import Cloud
from tests.e2e.flow import register_pack, run_action, unique_ref

# The seed's action, verbatim.
AXIOS_JS = """\
const axios = require('axios');
async function run(params) {
const response = await axios.get(params.url);
return response.data;
}
module.exports = { run };
"""
FAILING_JS = "module.exports = { run: async () => { throw new Error('no luck'); } };\n"


class _Data(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"from": "the test server", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def data_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Data)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/data"
    server.shutdown()


def test_node_action_requires_its_packs_dependencies(cloud: Cloud, data_url: str) -> None:
    user = cloud.register("t213")
    ref = unique_ref("node")
    spec = {"name": "fetch", "runner_type": "node", "entry_point": "actions/fetch.js",
            "parameters": {"url": {"type": "string", "required": True}}}
    failing = {"name": "fails", "runner_type": "node", "entry_point": "actions/fails.js"}
    register_pack(user, ref, {
        "pack.yaml": f"ref: {ref}\nversion: 1.0.0\n",
        "package.json": json.dumps({"name": ref, "version": "1.0.0", "dependencies": {"axios": "^1.0.0"}}),
        "actions/fetch.yaml": yaml.safe_dump(spec), "actions/fetch.js": AXIOS_JS,
        "actions/fails.yaml": yaml.safe_dump(failing), "actions/fails.js": FAILING_JS,
    })
    # WHEN the seed's axios action runs THEN npm installed axios for the pack, and run()'s value is the result
    done = run_action(user, f"{ref}.fetch", {"url": data_url})
    assert done["status"] == "succeeded", done["result"]
    assert done["result"]["output"] == {"from": "the test server", "path": "/data"}
    # AND node_modules was built once for the pack, under the deps dir
    if cloud.log_path is not None:
        found = list((cloud.log_path.parent / "deps" / "node").glob(f"*/{ref}/*/node_modules/axios/package.json"))
        assert len(found) == 1, found
    # AND a throw fails the execution with the error's message
    failed = run_action(user, f"{ref}.fails", {})
    assert failed["status"] == "failed" and failed["result"]["error"] == "Error: no luck", failed["result"]

"""T2.12 Python action with dependencies: the seed's pack (`requests==2.28.0`) gets its own virtualenv.

The action imports requests and makes an HTTP request (to a server the test
runs on loopback); the virtualenv is built once from requirements.txt and
reused by the next execution.
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

HTTP_CALL_PY = """\
import requests


def run(url):
    response = requests.get(url, timeout=10)
    return {"requests": requests.__version__, "status": response.status_code, "body": response.json()}
"""


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"hello": "from the test"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hello_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def pack_files(requests_pin: str) -> dict[str, str]:
    """The seed's pack structure: pack.yaml, requirements.txt, actions/http_call.py."""
    spec = {"name": "http_call", "runner_type": "python3", "entry_point": "actions/http_call.py",
            "parameters": {"url": {"type": "string", "required": True}}}
    return {"requirements.txt": f"requests=={requests_pin}\n", "actions/http_call.yaml": yaml.safe_dump(spec),
            "actions/http_call.py": HTTP_CALL_PY}


def test_python_action_imports_its_packs_dependencies(cloud: Cloud, hello_url: str) -> None:
    user = cloud.register("t212")
    ref = unique_ref("deps")
    register_pack(user, ref, {**pack_files("2.28.0"), "pack.yaml": f"ref: {ref}\nversion: 1.0.0\n"})
    # WHEN its action runs THEN it imported requests 2.28.0 from the pack's virtualenv and made the request
    first = run_action(user, f"{ref}.http_call", {"url": hello_url})
    assert first["status"] == "succeeded", first["result"]
    assert first["result"]["output"] == {"requests": "2.28.0", "status": 200, "body": {"hello": "from the test"}}
    # AND the virtualenv was created once, under the data dir's deps/venvs/<tenant>/<pack>/, and reused
    second = run_action(user, f"{ref}.http_call", {"url": hello_url})
    assert second["status"] == "succeeded"
    if cloud.log_path is not None:  # a cloud this session started: its data dir is known
        venvs = [p for p in (cloud.log_path.parent / "deps" / "venvs").glob(f"*/{ref}/*")
                 if p.is_dir() and not p.name.endswith(".lock")]
        assert len(venvs) == 1 and (venvs[0] / "bin" / "python").exists(), venvs

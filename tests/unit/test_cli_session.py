"""The CLI's saved session: where tokens live, who may read them, and how API errors read."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from chalicelib.cli.session import Response, api_error, config_dir, load_tokens, save_tokens, ws_url_for


def test_config_dir_follows_attune_config_dir_then_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ATTUNE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_dir() == tmp_path / "xdg" / "attune"
    monkeypatch.setenv("ATTUNE_CONFIG_DIR", str(tmp_path / "own"))
    assert config_dir() == tmp_path / "own"


def test_tokens_are_saved_per_url_readable_by_the_owner_only(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    # GIVEN a config dir WHEN tokens for two APIs are saved
    monkeypatch.setenv("ATTUNE_CONFIG_DIR", str(tmp_path / "cfg"))
    path = save_tokens("http://a", {"access_token": "A"})
    save_tokens("http://b", {"access_token": "B"})
    # THEN each URL keeps its own, in a file of mode 0600, in a directory of mode 0700
    assert (load_tokens("http://a"), load_tokens("http://b")) == ({"access_token": "A"}, {"access_token": "B"})
    assert load_tokens("http://c") is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_local_clouds_websocket_is_the_api_port_plus_one() -> None:
    assert ws_url_for("http://127.0.0.1:18080") == "ws://127.0.0.1:18081"
    assert ws_url_for("http://localhost:18280") == "ws://localhost:18281"
    assert ws_url_for("https://abc.execute-api.eu-west-1.amazonaws.com/api") is None


def test_an_api_error_reads_as_status_and_the_apis_message() -> None:
    answer = Response(404, {"error": {"code": "not_found", "message": "action 'x.y' not found"}}, {})
    assert str(api_error(answer)) == "404: action 'x.y' not found"
    assert str(api_error(Response(502, "Bad Gateway", {}))) == "502: HTTP 502: Bad Gateway"

"""The `attune` command as a user runs it: a real subprocess, its own config dir, aimed at the cloud under test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.client import PASSWORD, Cloud, User

ROOT = Path(__file__).resolve().parents[3]
PACKS = ROOT / "tests" / "fixtures" / "packs"
TIMEOUT_S = 120


@dataclass
class Cli:
    """`python -m chalicelib.cli` with ATTUNE_URL, ATTUNE_WS_URL and ATTUNE_CONFIG_DIR set for one test user."""

    cloud: Cloud
    config_dir: Path
    user: User | None = None

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of one invocation (the tests' own ATTUNE_* settings left out)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")}
        base.update({"ATTUNE_URL": self.cloud.url, "ATTUNE_CONFIG_DIR": str(self.config_dir),
                     "ATTUNE_WS_URL": self.cloud.ws_url or "off", "PYTHONUNBUFFERED": "1"})
        base.update(extra)
        return base

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = TIMEOUT_S,
                 **env: str) -> subprocess.CompletedProcess[str]:
        """Run `attune ARGS...` to its end; the result carries exit code, stdout and stderr."""
        return subprocess.run([sys.executable, "-m", "chalicelib.cli", *args], input=stdin, capture_output=True,
                              text=True, timeout=timeout, env=self.env(**env), cwd=ROOT, check=False)

    def ok(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run it and require exit status 0 (the failure message shows both streams)."""
        done = self(*args, **env)
        assert done.returncode == 0, f"attune {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str, **env: str) -> Any:
        """Run it with --json and parse what it printed."""
        return json.loads(self.ok(*args, "--json", **env).stdout)

    def fails(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run it and require a non-zero exit with a message on stderr."""
        done = self(*args, **env)
        assert done.returncode != 0, f"attune {' '.join(args)} succeeded:\n{done.stdout}"
        assert done.stderr.strip(), "a failure must say why on stderr"
        return done


def logged_in(cloud: Cloud, tmp_path: Path, prefix: str) -> Cli:
    """A new tenant admin (admins are not rate limited), logged in through `attune login`."""
    user = cloud.register(prefix)
    cli = Cli(cloud, tmp_path / "attune-config", user)
    cli.ok("login", "--username", user.username, "--password", PASSWORD)
    return cli

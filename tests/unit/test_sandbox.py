"""How the sandbox's command line is built (chalicelib/runners/sandbox.py), without starting anything.

The integration tests (tests/integration/test_runners.py) and the escape
tests (tests/e2e/tier3/test_sandbox_escapes.py) run real sandboxes; these pin
the argv itself: nothing of the data dir is bound where the action could
see it nor written on a command line, the environment is exactly the one
built for the action, and every limit is set.
"""

from __future__ import annotations

import os
import resource
import shutil
from pathlib import Path

import pytest

from chalicelib.config import SandboxSettings
from chalicelib.runners import etc_snapshot, process
from chalicelib.runners import launch as ln
from chalicelib.runners import sandbox as sb
from chalicelib.runners.base import RunRequest

DATA_DIR = Path("/srv/attune-data-dir")
PACK = DATA_DIR / "pack-cache" / "w123-abc" / "0123456789abcdef"
WORK = Path("/tmp/attune-exec-7-xyz")  # a host work dir as the runner names it; never created here
SETTINGS = SandboxSettings(mode="required", memory_mb=256, processes=64, file_size_mb=10, cpu_seconds=30)
# Options that take (source, destination) and those that take a destination only.
TWO_PATHS = {"--bind", "--ro-bind", "--ro-bind-try", "--symlink"}
ONE_PATH = {"--dir", "--tmpfs", "--proc", "--dev", "--chdir", "--remount-ro"}


def _sandbox(timeout_s: float = 60) -> sb.Sandbox:
    return sb.Sandbox("/usr/bin/bwrap", sb.UID_BASE + 7, SETTINGS, timeout_s)


def _options(env: dict[str, str] | None = None) -> list[str]:
    return _sandbox().options(work_dir=WORK, env=env or {"PATH": "/usr/bin"}, pack_dir=PACK,
                              read_only=[Path("/opt/python3.11")])


def _destinations(options: list[str]) -> list[str]:
    """Every path that exists inside the sandbox because of an option."""
    found, i = [], 0
    while i < len(options):
        opt = options[i]
        if opt in TWO_PATHS:
            found.append(options[i + 2])
            i += 3
        elif opt in ONE_PATH:
            found.append(options[i + 1])
            i += 2
        elif opt in {"--perms", "--size", "--hostname"}:
            i += 2
        elif opt == "--setenv":
            i += 3
        else:
            i += 1
    return found


def _pairs(options: list[str], flag: str) -> list[tuple[str, str]]:
    return [(options[i + 1], options[i + 2]) for i, opt in enumerate(options) if opt == flag]


def test_nothing_of_the_data_dir_exists_inside_the_pack_and_work_dir_sit_at_neutral_paths() -> None:
    options = _options()
    destinations = _destinations(options)
    # THEN no path inside the sandbox is under the data dir or the host's work dir
    assert destinations and not any(d.startswith((str(DATA_DIR), str(WORK))) for d in destinations), destinations
    # AND the pack is read-only at /attune/pack, the work dir writable at /attune/work and the cwd
    assert (str(PACK), "/attune/pack") in _pairs(options, "--ro-bind")
    assert _pairs(options, "--bind") == [(str(WORK), "/attune/work")]
    assert options[options.index("--chdir") + 1] == "/attune/work"
    assert (str(sb.SDK_DIR), "/attune/sdk") in _pairs(options, "--ro-bind")
    assert (str(sb.WRAPPER), "/attune/wrapper.py") in _pairs(options, "--ro-bind")
    # AND the root is an empty tmpfs, remounted read-only after the binds, with a private /proc and /tmp
    assert options.index("--tmpfs") < options.index("--remount-ro")
    assert options[options.index("--tmpfs") + 1] == "/"
    assert options[options.index("--remount-ro") + 1] == "/"
    assert options[options.index("--proc") + 1] == "/proc"
    assert ["--perms", "1777", "--size", str(10 * sb.MIB), "--tmpfs", "/tmp"] == options[
        options.index("1777") - 1:options.index("1777") + 5]


def test_with_an_args_fd_no_host_path_is_on_the_command_line() -> None:
    argv = _sandbox().argv(["/usr/bin/bash", "/attune/pack/a.sh"], args_fd=9)
    # THEN the command line (readable by every process, /proc/<pid>/cmdline) names neither the pack nor the work dir
    assert not any(str(DATA_DIR) in a or str(WORK) in a for a in argv), argv
    assert argv[:3] == ["/usr/bin/bwrap", "--args", "9"]
    # AND what bwrap reads from the descriptor is the options, NUL-terminated
    options = _options()
    assert sb.encode(options).split(b"\0")[:-1] == [o.encode() for o in options]


def test_one_exec_of_bwrap_then_setpriv_then_the_command() -> None:
    # GIVEN a confined start prepared as the runners prepare it
    launch = ln.prepare(_sandbox(), ["/bin/true"], work_dir=WORK, env={"PATH": "/usr/bin"}, pack_dir=PACK)
    try:
        argv = launch.argv
        # THEN the first program is bwrap itself (no prlimit in front of it), and the only one before the
        # command is setpriv, the uid drop
        assert argv[0] == "/usr/bin/bwrap" and "prlimit" not in " ".join(argv)
        programs = [a for a in argv if a.startswith("/") and not a.startswith("--")]
        assert programs[0] == "/usr/bin/bwrap" and programs[-1] == "/bin/true" and len(programs) == 3
        # AND the descriptors bwrap is given are the child's: the info pipe, the block pipe (both ends) and its options
        assert len(launch.child_fds) == 4 and argv[2] == str(launch.child_fds[-1])
    finally:
        launch.close()
    assert launch.child_fds == [] and launch.info_r == launch.block_w == -1


def test_bwrap_reports_its_pid_and_waits_for_the_limits() -> None:
    options = _sandbox().options(work_dir=WORK, env={}, pack_dir=PACK, info_fd=11, block_fd=12)
    # THEN bwrap writes its init's pid on the info descriptor and blocks on the other before starting anything
    assert options[options.index("--info-fd") + 1] == "11"
    assert options[options.index("--block-fd") + 1] == "12"


def test_etc_is_one_bind_of_a_snapshot_holding_only_the_listed_files() -> None:
    options = _options()
    etc = [src for src, dest in _pairs(options, "--ro-bind") if dest == "/etc"]
    # THEN /etc is a single bind (not one per file), of a directory holding copies of the listed files only
    assert len(etc) == 1 and not any(dest.startswith("/etc/") for _src, dest in _pairs(options, "--ro-bind"))
    names = {p.name for p in Path(etc[0]).iterdir()}
    assert names and names <= set(etc_snapshot.ETC_FILES), names
    assert "shadow" not in names and not (Path(etc[0]) / "ssl" / "private").exists()


def test_the_environment_is_exactly_the_actions_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a worker whose environment holds the platform's secrets
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPLATFORM")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "platform-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "platform-session")
    monkeypatch.setenv("ATTUNE_DATABASE_URL", "postgresql://postgres:pw@/attune?host=/srv/attune-data-dir/pgdata")
    monkeypatch.setenv("ATTUNE_DATA_DIR", str(DATA_DIR))
    request = RunRequest(execution_id=7, runner_type="shell", parameters={}, code="true")
    env = process.action_env(request, 5, home=sb.WORK_MOUNT, sdk=sb.SDK_MOUNT)
    options = _options(env)
    # THEN bwrap clears the environment and sets only the action's variables
    assert "--clearenv" in options and options.index("--clearenv") < options.index("--setenv")
    setenv = dict(_pairs(options, "--setenv"))
    assert setenv == env
    assert set(setenv) == {"PATH", "HOME", "LANG", "PYTHONPATH", "PYTHONUNBUFFERED", "ATTUNE_EXECUTION_ID",
                           "ATTUNE_CONTEXT_FD"}
    assert not any(k.startswith("AWS_") or k in ("ATTUNE_DATABASE_URL", "ATTUNE_DATA_DIR") for k in setenv)
    blob = sb.encode(options)
    for secret in (b"AKIAPLATFORM", b"platform-secret", b"platform-session", b"pgdata"):
        assert secret not in blob
    # AND its HOME and PYTHONPATH are the neutral mounts
    assert (setenv["HOME"], setenv["PYTHONPATH"]) == ("/attune/work", "/attune/sdk")


def test_limits_namespaces_and_the_dropped_uid() -> None:
    launch = ln.prepare(_sandbox(timeout_s=60), ["/bin/true"], work_dir=WORK, env={}, pack_dir=None)
    launch.close()
    expected = {"data": 256 * sb.MIB, "nproc": 64, "fsize": 10 * sb.MIB, "cpu": 30}
    # THEN every limit is among those set on the sandbox's init (never above the worker's own hard limit)
    for name, value in expected.items():
        hard = resource.getrlimit(sb.RLIMITS[name])[1]
        assert launch.limits[name] == (value if hard == resource.RLIM_INFINITY else min(value, hard))
    # AND it drops to the execution's own uid, with no capabilities, right before the command
    argv = launch.argv
    drop = argv[argv.index("/bin/true") - 7:argv.index("/bin/true")]
    assert drop[1:] == [f"--reuid={sb.UID_BASE + 7}", f"--regid={sb.UID_BASE + 7}", "--clear-groups",
                        "--inh-caps=-all", "--bounding-set=-all", "--"]
    options = _options()
    for flag in ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent"):
        assert flag in options


def test_a_virtualenv_is_bound_at_a_neutral_path_never_its_own(tmp_path: Path) -> None:
    # GIVEN a virtualenv somewhere under a data dir
    venv = tmp_path / "data" / "deps" / "venvs" / "t1" / "abc"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin" / "python").symlink_to(sb.base_python())
    python = str(venv / "bin" / "python")
    # THEN it is recognised, and the interpreter's read-only prefixes are the base interpreter's only
    assert sb.venv_dir(python) == venv and sb.venv_dir(sb.base_python()) is None
    assert not any(p.is_relative_to(tmp_path) for p in sb.python_prefixes(python))


def test_cpu_limit_defaults_to_the_timeout_and_never_exceeds_the_workers_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a worker whose own hard limits are 100 processes and unlimited CPU
    hard = {resource.RLIMIT_NPROC: 100}
    monkeypatch.setattr(sb.resource, "getrlimit", lambda res: (0, hard.get(res, resource.RLIM_INFINITY)))
    limits = sb.Sandbox("/usr/bin/bwrap", sb.UID_BASE, SandboxSettings(processes=500, cpu_seconds=None), 12.2).rlimits()
    # THEN the CPU limit is the timeout rounded up, and the process limit is capped at the worker's (prlimit
    # could not raise it: the action would not start at all)
    assert limits["cpu"] == 13 and limits["nproc"] == 100


def test_inside_maps_host_paths_to_what_the_action_sees() -> None:
    assert sb.inside(PACK / "actions" / "a.py", work_dir=WORK, pack_dir=PACK) == Path("/attune/pack/actions/a.py")
    assert sb.inside(WORK / "action.sh", work_dir=WORK, pack_dir=PACK) == Path("/attune/work/action.sh")
    assert sb.inside(sb.WRAPPER, work_dir=WORK, pack_dir=None) == Path("/attune/wrapper.py")
    assert sb.inside(sb.SDK_DIR / "attune_action", work_dir=WORK, pack_dir=None) == Path("/attune/sdk/attune_action")
    assert sb.inside(Path("/usr/bin/python3"), work_dir=WORK, pack_dir=PACK) == Path("/usr/bin/python3")


def test_exit_codes_of_signals_come_back_negative() -> None:
    assert [sb.exit_code(c) for c in (0, 1, 128, 137, 143, 192, 193)] == [0, 1, 128, -9, -15, -64, 193]


def test_modes_off_auto_and_required_without_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sb, "usable_bwrap", lambda: None)
    monkeypatch.setenv("ATTUNE_SANDBOX", "off")
    assert sb.sandbox_for(7, 10) is None
    monkeypatch.setenv("ATTUNE_SANDBOX", "auto")
    assert sb.sandbox_for(7, 10) is None and not sb.available()
    monkeypatch.setenv("ATTUNE_SANDBOX", "required")
    with pytest.raises(sb.SandboxUnavailable, match="bubblewrap"):
        sb.sandbox_for(7, 10)
    monkeypatch.setattr(sb, "usable_bwrap", lambda: "/usr/bin/bwrap")
    found = sb.sandbox_for(1_000_007, 10)
    assert found is not None and found.uid == sb.UID_BASE + 7  # execution id mod UID_SPAN


def test_the_etc_snapshot_follows_the_hosts_files(tmp_path: Path) -> None:
    # GIVEN an /etc with a resolver config, a key dir and a file the sandbox must not get
    etc = tmp_path / "etc"
    (etc / "ssl" / "private").mkdir(parents=True)
    (etc / "ssl" / "private" / "key.pem").write_text("KEY")
    (etc / "ssl" / "cert.pem").write_text("CERT")
    (etc / "resolv.conf").write_text("nameserver 10.0.0.1\n")
    (etc / "shadow").write_text("root:x")
    made: list[Path] = []
    try:
        made.append(first := etc_snapshot.etc_dir(etc))
        # THEN the snapshot holds the listed files only, never ssl/private, and is reused while nothing changes
        assert sorted(p.name for p in first.iterdir()) == ["resolv.conf", "ssl"]
        assert (first / "ssl" / "cert.pem").read_text() == "CERT" and not (first / "ssl" / "private").exists()
        assert etc_snapshot.etc_dir(etc) == first
        # WHEN the host's resolver changes, THEN the next start gets a new snapshot with the new content
        (etc / "resolv.conf").write_text("nameserver 10.0.0.2\nnameserver 10.0.0.3\n")
        made.append(second := etc_snapshot.etc_dir(etc))
        assert second != first and "10.0.0.2" in (second / "resolv.conf").read_text()
    finally:
        for path in made:  # named after this test's own /etc: nothing else will use them
            shutil.rmtree(path, ignore_errors=True)


def test_a_snapshot_name_someone_else_took_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a world-writable directory squatting on the snapshot's name in the shared temp dir
    monkeypatch.setattr(etc_snapshot.tempfile, "tempdir", str(tmp_path))
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "hosts").write_text("127.0.0.1 localhost\n")
    fingerprint = etc_snapshot._fingerprint(etc)
    digest = etc_snapshot.hashlib.sha256(repr((str(etc), fingerprint)).encode()).hexdigest()[:16]
    squat = tmp_path / f"attune-etc-{os.geteuid()}-{digest}"
    squat.mkdir()
    squat.chmod(0o777)
    (squat / "hosts").write_text("6.6.6.6 localhost\n")
    # WHEN a sandbox's /etc is asked for THEN it is a private copy of the real files, not the squatter's
    got = etc_snapshot._snapshot(etc, fingerprint)
    assert got != squat and (got / "hosts").read_text() == "127.0.0.1 localhost\n"

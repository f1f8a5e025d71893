"""Pack contents: paths, archives, pack.yaml, actions/*.yaml, versions (pure, no I/O)."""

from __future__ import annotations

import base64
import io
import tarfile
from pathlib import Path

import pytest

from chalicelib.core.errors import PayloadTooLarge, ValidationFailed
from chalicelib.core.pack_archive import (
    MAX_FILES,
    build_archive,
    clean_path,
    decode_archive,
    inline_files,
    unpack_archive,
)
from chalicelib.core.packs import (
    check_action,
    entry_point_path,
    file_index,
    pack_identity,
    parse_actions,
    read_manifest,
)
from chalicelib.core.versions import bump_patch, is_newer, parse_version
from chalicelib.models.packs import ActionFields

FIXTURE_PACK = Path(__file__).resolve().parents[1] / "fixtures" / "packs" / "test_pack"
ECHO_YAML = b"name: echo\nrunner_type: python3\nentry_point: echo.py\n"


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, content in members:
            if content is not None:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                tar.addfile(info)
    return buf.getvalue()


def regular(name: str, content: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), content


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


# --- paths -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("actions/echo.py", "actions/echo.py"), ("./actions//echo.py", "actions/echo.py"), ("a/./b", "a/b")],
)
def test_clean_path_normalises_relative_paths(raw: str, expected: str) -> None:
    # GIVEN a harmless relative path WHEN it is cleaned THEN it is normalised
    assert clean_path(raw) == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("/etc/passwd", "absolute"),
        ("C:/evil", "absolute"),
        ("../evil", ".."),
        ("actions/../../evil", ".."),
        ("a\\b", "backslash"),
        ("a\x00b", "control"),
        ("", "empty"),
        (".", "names no file"),
        ("/".join(["d"] * 20), "too deep"),
    ],
)
def test_clean_path_refuses_paths_that_leave_the_pack(raw: str, problem: str) -> None:
    # GIVEN a path that escapes, is absolute or is malformed
    # WHEN it is cleaned THEN it is refused with a message saying why
    with pytest.raises(ValidationFailed, match=problem):
        clean_path(raw)


def test_inline_files_are_encoded_and_checked() -> None:
    # GIVEN inline files WHEN validated THEN they come back as bytes under clean paths
    files = inline_files({"./actions/echo.py": "print('hi')", "requirements.txt": "requests==2.28.0\n"})
    assert files == {"actions/echo.py": b"print('hi')", "requirements.txt": b"requests==2.28.0\n"}


def test_inline_files_refuse_two_names_for_one_file() -> None:
    with pytest.raises(ValidationFailed, match="same file"):
        inline_files({"a/b": "1", "./a/b": "2"})


def test_inline_files_refuse_a_file_that_is_also_a_directory() -> None:
    with pytest.raises(ValidationFailed, match="both a file and the directory"):
        inline_files({"actions": "x", "actions/echo.py": "y"})


def test_inline_files_refuse_too_many_files() -> None:
    with pytest.raises(ValidationFailed, match="at most"):
        inline_files({f"f{i}": "" for i in range(MAX_FILES + 1)})


# --- archives --------------------------------------------------------------


def test_archive_round_trip_and_reproducible_bytes() -> None:
    # GIVEN a file map WHEN archived twice THEN the bytes are identical and unpack to the same files
    files = {"pack.yaml": b"ref: x\n", "actions/run.sh": b"#!/bin/sh\necho hi\n"}
    first, second = build_archive(files), build_archive(dict(reversed(list(files.items()))))
    assert first == second
    assert unpack_archive(first) == files
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert tar.getmember("actions/run.sh").mode == 0o755
        assert tar.getmember("pack.yaml").mode == 0o644


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        (regular("../evil.py"), "outside the destination|'\\.\\.'"),
        (regular("/etc/cron.d/evil"), "absolute|outside"),
        (special("link", tarfile.SYMTYPE, "/etc/passwd"), "link|outside|absolute"),
        (special("inside-link", tarfile.SYMTYPE, "pack.yaml"), "symbolic link"),
        (special("hard", tarfile.LNKTYPE, "pack.yaml"), "link"),
        (special("dev", tarfile.CHRTYPE), "device|special"),
        (special("fifo", tarfile.FIFOTYPE), "FIFO|special"),
    ],
)
def test_unpack_refuses_traversal_links_and_devices(member: tuple[tarfile.TarInfo, bytes | None], problem: str) -> None:
    # GIVEN an archive with one hostile entry next to a normal one
    data = tar_bytes(regular("pack.yaml", b"ref: x\n"), member)
    # WHEN it is read THEN the whole archive is refused, naming the entry's problem
    with pytest.raises(ValidationFailed, match=problem):
        unpack_archive(data)


def test_unpack_strips_the_single_top_directory_holding_pack_yaml() -> None:
    # GIVEN `tar czf p.tar.gz mypack/` WHEN read THEN paths are relative to the pack root
    data = tar_bytes(regular("mypack/pack.yaml", b"ref: mypack\n"), regular("mypack/actions/a.py", b"x"))
    assert set(unpack_archive(data)) == {"pack.yaml", "actions/a.py"}


def test_unpack_reads_archives_made_from_inside_the_pack_directory() -> None:
    # GIVEN `tar czf p.tar.gz -C mypack .` (entries "./", "./pack.yaml", ...)
    data = tar_bytes(special("./", tarfile.DIRTYPE), regular("./pack.yaml", b"ref: p\n"),
                     special("./actions", tarfile.DIRTYPE), regular("./actions/a.py", b"x"))
    # WHEN read THEN the files are at the pack root
    assert set(unpack_archive(data)) == {"pack.yaml", "actions/a.py"}


def test_unpack_keeps_actions_dir_when_there_is_no_pack_yaml() -> None:
    data = tar_bytes(regular("actions/a.py", b"x"), regular("actions/a.yaml", b"y"))
    assert set(unpack_archive(data)) == {"actions/a.py", "actions/a.yaml"}


def test_unpack_refuses_what_is_not_a_tarball() -> None:
    with pytest.raises(ValidationFailed, match=r"not a readable tar\.gz"):
        unpack_archive(b"PK\x03\x04 this is a zip, not a tar")


def test_unpack_refuses_an_oversized_member_before_reading_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chalicelib.core.pack_archive.MAX_FILE_BYTES", 10)
    with pytest.raises(PayloadTooLarge, match="size limits"):
        unpack_archive(tar_bytes(regular("big.bin", b"0" * 11)))


def test_decode_archive_checks_base64_and_size() -> None:
    # GIVEN base64 text WHEN decoded THEN bad encodings and oversized archives are refused
    assert decode_archive(base64.b64encode(b"abc").decode(), max_bytes=10) == b"abc"
    with pytest.raises(ValidationFailed, match="base64"):
        decode_archive("not base64!!", max_bytes=100)
    with pytest.raises(PayloadTooLarge):
        decode_archive(base64.b64encode(b"0" * 100).decode(), max_bytes=50)


# --- pack.yaml and identity ------------------------------------------------


def test_manifest_supplies_identity_and_body_wins() -> None:
    # GIVEN a pack.yaml WHEN merged with a body THEN the body's fields win except a different ref
    manifest = read_manifest({"pack.yaml": b"ref: p\nversion: 1.0.0\nname: Pretty\ndescription: d\n"})
    ident = pack_identity(manifest, ref=None, version="2.0.0")
    assert (ident.ref, ident.version, ident.label, ident.description) == ("p", "2.0.0", "Pretty", "d")
    with pytest.raises(ValidationFailed, match="does not match"):
        pack_identity(manifest, ref="other", version=None)


def test_identity_needs_a_ref_and_version_somewhere() -> None:
    with pytest.raises(ValidationFailed, match="ref is required"):
        pack_identity(None, ref=None, version="1.0.0")
    with pytest.raises(ValidationFailed, match="version is required"):
        pack_identity(None, ref="p", version=None)


def test_manifest_errors_name_the_file_and_field() -> None:
    with pytest.raises(ValidationFailed, match=r"pack\.yaml: version: String should match pattern"):
        read_manifest({"pack.yaml": b"ref: p\nversion: one\n"})
    with pytest.raises(ValidationFailed, match=r"pack\.yaml: expected a mapping"):
        read_manifest({"pack.yaml": b"- a list\n"})


# --- actions/*.yaml --------------------------------------------------------


def test_fixture_pack_parses() -> None:
    # GIVEN the test fixture pack on disk WHEN parsed THEN its echo action is found with its entry point
    files = {str(p.relative_to(FIXTURE_PACK)): p.read_bytes() for p in FIXTURE_PACK.rglob("*") if p.is_file()}
    actions = parse_actions("test_pack", files)
    assert [(a.ref, a.fields.runner_type, a.fields.entry_point) for a in actions] == [
        ("test_pack.echo", "python3", "echo.py")
    ]
    assert actions[0].fields.parameters["message"].required is True


def test_action_name_defaults_to_the_file_name() -> None:
    actions = parse_actions("p", {"actions/greet.yml": b"runner_type: shell\ncode: echo hi\n"})
    assert [a.ref for a in actions] == ["p.greet"]


def test_only_direct_children_of_actions_are_action_files() -> None:
    # GIVEN a StackStorm-style workflow definition under actions/workflows/
    files = {
        "actions/flow.yaml": b"runner_type: workflow\nentry_point: workflows/flow.yaml\n",
        "actions/workflows/flow.yaml": b"tasks:\n  - name: a\n    action: core.echo\n",
    }
    # WHEN parsed THEN only actions/flow.yaml is an action, and its workflow is read from the file
    (action,) = parse_actions("p", files)
    assert action.ref == "p.flow"
    assert action.fields.workflow == {"tasks": [{"name": "a", "action": "core.echo"}]}


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        (b"name: [unclosed\n", r"actions/bad.yaml: invalid YAML: .*line 2"),
        (b"- just\n- a list\n", "actions/bad.yaml: expected a mapping"),
        (b"runner_type: python-script\nentry_point: x.py\n", "StackStorm's 'python-script' is 'python3'"),
        (b"runner_type: shell\ncode: x\nparamters: {}\n", "paramters: Extra inputs are not permitted"),
        (b"runner_type: shell\ncode: x\ntimeout: '30'\n", "timeout: Input should be a valid integer"),
        (b"runner_type: shell\n", "needs an entry_point"),
        (b"runner_type: python3\nentry_point: missing.py\n", "entry_point 'missing.py' not found"),
        (b"runner_type: python3\nentry_point: actions/missing.py\n", "no file 'actions/missing.py'"),
        (b"runner_type: http\n", "needs http_config"),
        (b"runner_type: http\nhttp_config: {url: ftp://x}\n", "url must start with http"),
        (b"runner_type: container\n", "needs an image"),
        (b"runner_type: workflow\n", "needs a workflow"),
        (b"runner_type: shell\ncode: x\nimage: alpine\n", "image is only used by the 'container' runner"),
        (b"runner_type: shell\ncode: x\npack: other\n", "does not match the pack's ref"),
        (b"name: 'bad name'\nrunner_type: shell\ncode: x\n", "action name 'bad name' is invalid"),
        (b"base: &b {runner_type: shell}\nother: *b\n", "aliases"),
        (b"runner_type: workflow\nworkflow: {x: !!binary aGk=}\n", "only JSON-compatible values"),
        (b"runner_type: workflow\nworkflow: {x: .nan}\n", "only JSON-compatible values"),
        (b"runner_type: shell\ncode: \"a\\0b\"\n", "NUL"),
        (b"runner_type: shell\ncode: x\nparameters: {n: {type: integer, default: x}}\n", "default 'x' is invalid"),
    ],
)
def test_a_bad_action_file_is_refused_naming_file_and_problem(yaml_text: bytes, problem: str) -> None:
    # GIVEN a pack whose good action sits next to one broken action file
    files = {"actions/echo.py": b"print(1)", "actions/good.yaml": ECHO_YAML.replace(b"echo\n", b"good\n", 1),
             "actions/bad.yaml": yaml_text}
    # WHEN its actions are parsed THEN the registration is refused with the file and the problem
    with pytest.raises(ValidationFailed, match=problem) as caught:
        parse_actions("p", files)
    assert "actions/bad.yaml" in caught.value.message


def test_unquoted_dates_stay_strings() -> None:
    # GIVEN a workflow with an unquoted date WHEN parsed THEN it is the string written (JSON can hold it)
    doc = b"runner_type: workflow\nworkflow: {tasks: [{name: a, action: core.echo, input: {since: 2026-01-27}}]}\n"
    (action,) = parse_actions("p", {"actions/w.yaml": doc})
    assert action.fields.workflow == {"tasks": [{"name": "a", "action": "core.echo", "input": {"since": "2026-01-27"}}]}


def test_two_files_defining_one_action_are_refused() -> None:
    files = {"actions/a.yaml": b"name: x\nrunner_type: shell\ncode: a\n",
             "actions/b.yaml": b"name: x\nrunner_type: shell\ncode: b\n"}
    with pytest.raises(ValidationFailed, match=r"already defined by actions/a\.yaml"):
        parse_actions("p", files)


@pytest.mark.parametrize("written", ["actions/process.py", "process.py", "./actions/process.py"])
def test_entry_point_from_pack_root_or_from_actions_is_the_same_file(written: str) -> None:
    # GIVEN the seed's form (from the pack root) or StackStorm's (from actions/)
    # WHEN resolved THEN both name actions/process.py, not actions/actions/process.py
    assert entry_point_path(written) == "actions/process.py"


def test_entry_point_subdirectories_resolve_from_either_root() -> None:
    assert entry_point_path("workflows/flow.yaml") == "actions/workflows/flow.yaml"
    assert entry_point_path("actions/workflows/flow.yaml") == "actions/workflows/flow.yaml"


def test_an_action_file_with_the_seeds_entry_point_form_registers() -> None:
    # GIVEN an action written as the seed writes it (T1.5): entry_point from the pack root
    files = {"actions/process.py": b"print(1)",
             "actions/process.yaml": b"name: process\nrunner_type: python3\nentry_point: actions/process.py\n"}
    # WHEN parsed THEN it is accepted, with the entry point kept as written
    (action,) = parse_actions("p", files)
    assert action.fields.entry_point == "actions/process.py"
    assert entry_point_path(action.fields.entry_point) == "actions/process.py"


def test_entry_point_may_not_leave_the_pack() -> None:
    with pytest.raises(ValidationFailed, match=r"'\.\.'"):
        entry_point_path("actions/../../etc/passwd")


def test_check_action_refuses_code_and_entry_point_together() -> None:
    fields = ActionFields.model_validate({"runner_type": "python3", "code": "x", "entry_point": "a.py"})
    with pytest.raises(ValidationFailed, match="not both"):
        check_action(fields, {"actions/a.py"}, where="here")


def test_file_index_marks_action_files() -> None:
    files = {"actions/echo.py": b"x", "actions/echo.yaml": ECHO_YAML}
    index = file_index(files, parse_actions("p", files))
    assert index[1] == {"path": "actions/echo.yaml", "size": len(ECHO_YAML),
                        "sha256": index[1]["sha256"], "action": "echo"}
    assert "action" not in index[0]


# --- versions --------------------------------------------------------------


@pytest.mark.parametrize(
    ("newer", "older"),
    [("1.10.0", "1.9.0"), ("2.0.0", "1.99.99"), ("1.0.0", "1.0.0-rc.1"), ("1.0.0-rc.10", "1.0.0-rc.9"),
     ("1.0.0-beta", "1.0.0-alpha.1"), ("1.0.0-alpha.beta", "1.0.0-alpha.1")],
)
def test_semver_ordering(newer: str, older: str) -> None:
    assert is_newer(newer, older)
    assert not is_newer(older, newer)


def test_version_bump_and_parse_errors() -> None:
    assert bump_patch("1.2.3") == "1.2.4"
    assert bump_patch("1.3.0-rc.1") == "1.3.0"
    assert parse_version("1.0.0+build.5") == parse_version("1.0.0")
    with pytest.raises(ValidationFailed, match="not a semantic version"):
        parse_version("1.0")


def _long_name_bomb(declared: int) -> bytes:
    """A GNU long-name ('L') header declaring `declared` bytes of name, with almost nothing behind it."""
    header = bytearray(512)
    header[0:13] = b"././@LongLink"
    header[100:108] = b"0000644\x00"
    header[124:136] = f"{declared:011o}\x00".encode()
    header[156:157] = b"L"
    header[257:263] = b"ustar "
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\x00 ".encode()
    return bytes(header) + b"A" * 512


def test_a_long_name_header_declaring_gigabytes_is_refused_without_reading_it() -> None:
    # GIVEN a tar.bz2 of under a kilobyte whose long-name header declares 8 GiB (issue 10: 2.1 GiB of RAM)
    import bz2
    import tracemalloc

    bomb = bz2.compress(_long_name_bomb(8 * 1024**3))
    assert len(bomb) < 1024
    # WHEN it is unpacked THEN it is refused, naming the header, and memory stays small
    tracemalloc.start()
    try:
        with pytest.raises(ValidationFailed, match="'L' header declaring"):
            unpack_archive(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, peak


def test_a_compression_bomb_stops_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a 1 MiB cap on the decompressed tar and a gzip of 64 MiB of zeros (tiny once compressed)
    import gzip as gz
    import tracemalloc

    monkeypatch.setattr("chalicelib.core.pack_archive.MAX_TAR_BYTES", 1024 * 1024)
    bomb = gz.compress(b"\x00" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 200 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge, match="decompresses to more than"):
            unpack_archive(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # THEN it never held more than a few times the cap
    assert peak < 8 * 1024 * 1024, peak

"""`attune pack register DIR`: a pack directory read and tarred safely (links out and odd files refused)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from chalicelib.cli.packdir import PackDirError, pack_archive, read_pack_dir
from chalicelib.core.pack_archive import unpack_archive

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "packs"
CATALOGUE = ("test_pack", "timer_pack", "webhook_pack", "workflow_pack", "failing_pack")


def make_pack(root: Path) -> Path:
    (root / "actions").mkdir(parents=True)
    (root / "pack.yaml").write_text("ref: demo\nversion: 1.0.0\n")
    (root / "actions" / "hello.yaml").write_text("runner_type: python3\nentry_point: hello.py\n")
    (root / "actions" / "hello.py").write_text("def run():\n    return 1\n")
    return root


def test_a_pack_dir_round_trips_through_the_servers_unpacker(tmp_path: Path) -> None:
    # GIVEN a pack with clutter a build leaves behind
    pack = make_pack(tmp_path / "demo")
    (pack / "actions" / "__pycache__").mkdir()
    (pack / "actions" / "__pycache__" / "hello.cpython-311.pyc").write_bytes(b"\x00")
    (pack / ".git").mkdir()
    (pack / ".git" / "HEAD").write_text("ref: main\n")
    # WHEN tarred THEN the server's own unpacker reads exactly the pack's files back
    files = unpack_archive(pack_archive(pack))
    assert sorted(files) == ["actions/hello.py", "actions/hello.yaml", "pack.yaml"]
    assert files["pack.yaml"] == b"ref: demo\nversion: 1.0.0\n"


def test_the_archive_is_reproducible(tmp_path: Path) -> None:
    pack = make_pack(tmp_path / "demo")
    first = pack_archive(pack)
    os.utime(pack / "pack.yaml", (1, 1))
    assert pack_archive(pack) == first


def test_a_link_inside_the_pack_is_uploaded_as_the_file(tmp_path: Path) -> None:
    pack = make_pack(tmp_path / "demo")
    (pack / "actions" / "alias.py").symlink_to("hello.py")
    files = unpack_archive(pack_archive(pack))
    assert files["actions/alias.py"] == files["actions/hello.py"]
    with tarfile.open(fileobj=io.BytesIO(pack_archive(pack))) as tar:
        assert all(m.isfile() for m in tar.getmembers())  # no link reaches the server


def test_a_relative_link_out_of_the_pack_is_refused(tmp_path: Path) -> None:
    pack = make_pack(tmp_path / "demo")
    (tmp_path / "secret.txt").write_text("s3cr3t")
    (pack / "actions" / "leak.txt").symlink_to("../../secret.txt")
    with pytest.raises(PackDirError, match=r"actions/leak.txt: a symbolic link to '../../secret.txt', which leaves"):
        read_pack_dir(pack)


def test_an_absolute_link_out_of_the_pack_is_refused(tmp_path: Path) -> None:
    pack = make_pack(tmp_path / "demo")
    (pack / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(PackDirError, match="passwd: a symbolic link to the absolute path '/etc/passwd'"):
        read_pack_dir(pack)


def test_a_linked_directory_is_refused_even_inside(tmp_path: Path) -> None:
    pack = make_pack(tmp_path / "demo")
    (pack / "more").symlink_to("actions")
    with pytest.raises(PackDirError, match="more: a symbolic link to a directory"):
        read_pack_dir(pack)


def test_a_broken_link_is_refused(tmp_path: Path) -> None:
    pack = make_pack(tmp_path / "demo")
    (pack / "actions" / "gone.py").symlink_to("nothing.py")
    with pytest.raises(PackDirError, match=r"gone\.py: .* not a file"):
        read_pack_dir(pack)


def test_a_fifo_is_refused(tmp_path: Path) -> None:
    pack = make_pack(tmp_path / "demo")
    os.mkfifo(pack / "pipe")
    with pytest.raises(PackDirError, match="pipe: not a regular file"):
        read_pack_dir(pack)


def test_a_dir_without_pack_yaml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "loose").mkdir()
    with pytest.raises(PackDirError, match=r"no pack\.yaml"):
        read_pack_dir(tmp_path / "loose")


@pytest.mark.parametrize("name", CATALOGUE)
def test_the_fixture_catalogue_packs_read_and_parse(name: str) -> None:
    # GIVEN each catalogue pack WHEN read as the CLI reads it THEN the server's parser accepts it
    from chalicelib.packs import load

    loaded = load(read_pack_dir(FIXTURES / name), ref=None, version=None)
    assert loaded.identity.ref == name
    assert loaded.actions, f"{name} defines no action"

"""The sandbox's nsswitch.conf keeps only `files` and `dns`: a uid no passwd names must not load NSS modules.

What would make these fail: a source such as `systemd` or `db` left on a
line (bash would dlopen libnss_systemd on every start), a line lost, or the
host's file copied verbatim into the snapshot.
"""

from __future__ import annotations

from pathlib import Path

from chalicelib.runners import etc_snapshot

DEBIAN = """# /etc/nsswitch.conf
passwd:         files systemd
group:          files systemd
hosts:          files mdns4_minimal [NOTFOUND=return] dns myhostname
protocols:      db files
netgroup:       nis
"""


def test_only_files_and_dns_sources_are_kept() -> None:
    out = etc_snapshot.sandbox_nsswitch(DEBIAN).splitlines()
    assert out == ["# /etc/nsswitch.conf", "passwd: files", "group: files", "hosts: files dns",
                   "protocols: files", "netgroup: files"]


def test_the_snapshot_holds_the_trimmed_file_and_the_rest_verbatim(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "nsswitch.conf").write_text(DEBIAN)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    snap = etc_snapshot.etc_dir(etc)
    assert "systemd" not in (snap / "nsswitch.conf").read_text()
    assert (snap / "nsswitch.conf").read_text().startswith("# /etc/nsswitch.conf\npasswd: files\n")
    assert (snap / "passwd").read_text() == "root:x:0:0:root:/root:/bin/bash\n"

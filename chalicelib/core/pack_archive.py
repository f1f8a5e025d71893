"""Pack files and archives, pure: the paths, sizes and tarballs a tenant uploads.

Every file a pack holds passes through here before anything is stored, so
the checks that keep uploads from harming the platform live in one place:
paths stay inside the pack (no absolute paths, no `..`, no links or devices
in archives) and sizes are capped before bytes are read (a 6 MiB tar.gz can
inflate to gigabytes). Each refusal is a 400 that names the file and the
problem, because a pack author fixes files, not stack traces.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import gzip
import io
import lzma
import tarfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import BinaryIO

from chalicelib.core.errors import PayloadTooLarge, ValidationFailed

Files = dict[str, bytes]

MAX_FILES = 1000
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_UNPACKED_BYTES = 64 * 1024 * 1024
MAX_PATH_DEPTH = 16
MANIFEST_NAMES = ("pack.yaml", "pack.yml")
# Headers that carry a long name or PAX attributes are read into memory whole by
# tarfile, at whatever size they declare: they are refused past this before it looks.
MAX_META_BYTES = 64 * 1024
# What a tar of a pack within the limits can take once decompressed: its files plus
# a header block and padding per entry.
MAX_TAR_BYTES = MAX_UNPACKED_BYTES + 2 * MAX_FILES * 3 * 512
_BLOCK = 512
_CHUNK = 256 * 1024
# data_filter needs a destination to judge traversal against; nothing is
# ever written there, archives are read into memory.
_VIRTUAL_DEST = "/attune-pack"


def clean_path(raw: str) -> str:
    """A pack-relative POSIX path, normalised; anything that could leave the pack is refused."""
    if not raw or any(ord(c) < 32 or c in "\\\x7f" for c in raw):
        raise ValidationFailed(f"file path {raw!r} is empty or contains a backslash or control character")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise ValidationFailed(f"file path {raw!r} is absolute; paths must be relative to the pack")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValidationFailed(f"file path {raw!r} contains '..'; paths must stay inside the pack")
    if not parts:
        raise ValidationFailed(f"file path {raw!r} names no file")
    if len(parts) > MAX_PATH_DEPTH or any(len(p) > 255 for p in parts):
        raise ValidationFailed(f"file path {raw!r} is too deep or has a name over 255 characters")
    return "/".join(parts)


def check_files(files: Files) -> None:
    """The caps every pack obeys, however its files arrived: count, sizes, no file/directory clash."""
    if len(files) > MAX_FILES:
        raise ValidationFailed(f"a pack may hold at most {MAX_FILES} files, got {len(files)}")
    total = 0
    for path, content in files.items():
        if len(content) > MAX_FILE_BYTES:
            raise PayloadTooLarge(f"file {path!r} is {len(content)} bytes; the limit is {MAX_FILE_BYTES}")
        total += len(content)
        parent = PurePosixPath(path).parent
        while str(parent) != ".":
            if str(parent) in files:
                raise ValidationFailed(f"{parent!s} is both a file and the directory of {path!r}")
            parent = parent.parent
    if total > MAX_UNPACKED_BYTES:
        raise PayloadTooLarge(f"the pack's files total {total} bytes; the limit is {MAX_UNPACKED_BYTES}")


def inline_files(files: Mapping[str, str]) -> Files:
    """The `"files": {path: text}` of a request, validated, as bytes."""
    out: Files = {}
    for raw, text in files.items():
        path = clean_path(raw)
        if path in out:
            raise ValidationFailed(f"file paths {raw!r} and {path!r} name the same file")
        try:
            out[path] = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationFailed(f"file {path!r} is not valid Unicode text: {exc.reason}") from exc
    check_files(out)
    return out


def decode_archive(encoded: str, *, max_bytes: int) -> bytes:
    """The bytes of a base64 `"archive"`, refused early when over `max_bytes`."""
    if (len(encoded) * 3) // 4 > max_bytes + 3:
        raise PayloadTooLarge(f"archive is over the limit of {max_bytes} bytes once decoded")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed(f"archive is not valid base64: {exc}") from exc
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"archive is {len(data)} bytes; the limit is {max_bytes}")
    return data


def _member_kind(member: tarfile.TarInfo) -> str:
    kinds = ((member.issym(), "symbolic link"), (member.islnk(), "hard link"), (member.isdev(), "device"),
             (member.isfifo(), "FIFO"))
    return next((name for match, name in kinds if match), "special file")


_COMPRESSED: tuple[tuple[bytes, Callable[[BinaryIO], io.BufferedIOBase]], ...] = (
    (b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw)),
    (b"BZh", bz2.BZ2File),
    (b"\xfd7zXZ\x00", lzma.LZMAFile),
)


def _decompressed(data: bytes) -> bytes:
    """The tar inside gzip, bzip2 or xz (or a plain tar), read no further than MAX_TAR_BYTES.

    Decompressing as a stream with a cap is what keeps a small bomb from
    inflating to gigabytes in the API's memory.
    """
    opener = next((open_ for magic, open_ in _COMPRESSED if data.startswith(magic)), None)
    if opener is None:
        return data
    chunks: list[bytes] = []
    size = 0
    with opener(io.BytesIO(data)) as stream:
        # In chunks: a single read(cap) would allocate the whole cap up front.
        while size <= MAX_TAR_BYTES and (chunk := stream.read(_CHUNK)):
            chunks.append(chunk)
            size += len(chunk)
    tar = b"".join(chunks)
    if size > MAX_TAR_BYTES:
        raise PayloadTooLarge(f"archive decompresses to more than {MAX_TAR_BYTES} bytes; "
                              f"a pack's files may total {MAX_UNPACKED_BYTES}")
    return tar


def _header_size(block: bytes) -> int | None:
    """The size field of a tar header block (octal, or GNU base-256); None when unreadable."""
    field = block[124:136]
    if field[:1] in (b"\x80", b"\xff"):  # base-256: a big number, or a negative one
        value = int.from_bytes(field[1:], "big")
        return -1 if field[:1] == b"\xff" else value
    text = field.split(b"\x00", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        return None


def _check_headers(tar: bytes) -> None:
    """Walk the raw headers before tarfile does: no meta header or file may declare an oversize body."""
    offset = 0
    while offset + _BLOCK <= len(tar):
        block = tar[offset : offset + _BLOCK]
        if block == b"\x00" * _BLOCK:
            return
        size = _header_size(block)
        if size is None:
            return  # not a header we can read: tarfile reports the damage
        kind = block[156:157]
        if size < 0 or (kind in (b"L", b"K", b"x", b"g") and size > MAX_META_BYTES):
            raise ValidationFailed(f"archive has a {kind.decode(errors='replace')!r} header declaring "
                                   f"{size} bytes; long names and attributes may take {MAX_META_BYTES}")
        if size > MAX_FILE_BYTES:
            raise PayloadTooLarge(f"archive entry declares {size} bytes, over the pack's size limits "
                                  f"({MAX_FILE_BYTES} bytes a file)")
        offset += _BLOCK + -(-size // _BLOCK) * _BLOCK


def unpack_archive(data: bytes) -> Files:
    """Read a tar (gzip, bzip2 or xz) into memory: regular files only, every path checked."""
    files: Files = {}
    total = 0
    try:
        tar_bytes = _decompressed(data)
        _check_headers(tar_bytes)
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for seen, member in enumerate(tar, start=1):
                if seen > 2 * MAX_FILES:
                    raise ValidationFailed(f"archive has more than {2 * MAX_FILES} entries")
                if member.isdir() and not member.name.strip("./"):
                    continue  # the "./" entry of `tar -C dir .`
                # data_filter would quietly strip a leading '/'; an absolute
                # name is refused instead, like one with '..'.
                path = clean_path(member.name)
                try:
                    member = tarfile.data_filter(member, _VIRTUAL_DEST)  # noqa: PLW2901
                except tarfile.FilterError as exc:
                    raise ValidationFailed(f"archive entry {member.name!r} refused: {exc}") from exc
                if member.isdir():
                    continue
                if not member.isfile():
                    raise ValidationFailed(
                        f"archive entry {member.name!r} is a {_member_kind(member)}; "
                        "only regular files and directories are allowed"
                    )
                total += member.size
                if member.size > MAX_FILE_BYTES or total > MAX_UNPACKED_BYTES:
                    raise PayloadTooLarge(
                        f"archive entry {path!r} takes the pack over its size limits "
                        f"({MAX_FILE_BYTES} bytes a file, {MAX_UNPACKED_BYTES} in all)"
                    )
                handle = tar.extractfile(member)
                if handle is None:
                    raise ValidationFailed(f"archive entry {path!r} cannot be read")
                if path in files:
                    raise ValidationFailed(f"archive holds {path!r} twice")
                files[path] = handle.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise ValidationFailed(f"archive is not a readable tar.gz: {exc}") from exc
    files = _strip_top_directory(files)
    check_files(files)
    return files


def _strip_top_directory(files: Files) -> Files:
    # `tar czf p.tar.gz mypack/` puts everything under `mypack/`; the pack's
    # root is where its pack.yaml is, so strip that one directory.
    if not files or any(name in files for name in MANIFEST_NAMES):
        return files
    tops = {path.split("/", 1)[0] for path in files}
    if len(tops) != 1 or "/" not in next(iter(files)):
        return files
    top = tops.pop()
    if not any(f"{top}/{name}" in files for name in MANIFEST_NAMES):
        return files
    return {path.split("/", 1)[1]: content for path, content in files.items()}


def build_archive(files: Files) -> bytes:
    """A reproducible tar.gz of the files: same files, same bytes (sorted, no timestamps)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(
        fileobj=gz, mode="w", format=tarfile.PAX_FORMAT
    ) as tar:
        for path in sorted(files):
            content = files[path]
            info = tarfile.TarInfo(path)
            info.size = len(content)
            info.mode = 0o755 if content.startswith(b"#!") else 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()

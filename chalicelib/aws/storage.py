"""Pack files in S3: one reproducible tar.gz per pack version.

Every version gets its own key (`tenants/<tenant>/packs/<ref>/<version>/
pack.tar.gz`), and a reload writes a new one instead of overwriting, so a
worker that already resolved the old key finishes on the old code while new
executions take the new.
"""

from __future__ import annotations

import io
import logging
import tarfile
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws.clients import client, ensure_local_credentials
from chalicelib.aws.names import pack_bucket
from chalicelib.config import settings
from chalicelib.core.errors import NotFound, ServiceUnavailable
from chalicelib.core.pack_archive import Files, build_archive, unpack_archive

log = logging.getLogger("attune.storage")
ARCHIVE_NAME = "pack.tar.gz"


def pack_key(tenant_id: int | None, ref: str, version: str) -> str:
    """Where one version of a pack lives; system packs under `tenants/system/`."""
    owner = "system" if tenant_id is None else str(tenant_id)
    return f"tenants/{owner}/packs/{ref}/{version}/{ARCHIVE_NAME}"


def _unavailable(action: str, key: str, exc: Exception) -> ServiceUnavailable:
    log.error("S3 %s of %s failed: %s", action, key, exc)
    return ServiceUnavailable(f"pack storage is unavailable ({action} {key}); retry later")


def put_pack(key: str, files: Files) -> None:
    """Store the pack's files as one tar.gz object."""
    body = build_archive(files)
    try:
        client("s3").put_object(
            Bucket=pack_bucket(), Key=key, Body=body, ContentType="application/gzip"
        )
    except (ClientError, BotoCoreError) as exc:
        raise _unavailable("upload", key, exc) from exc


def pack_exists(key: str) -> bool:
    """Whether the object is in the bucket (a HEAD): lets the bootstrap re-upload a lost system pack."""
    try:
        client("s3").head_object(Bucket=pack_bucket(), Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return False
        raise _unavailable("lookup", key, exc) from exc
    except BotoCoreError as exc:
        raise _unavailable("lookup", key, exc) from exc
    return True


def _get_object(key: str) -> bytes:
    try:
        response: Any = client("s3").get_object(Bucket=pack_bucket(), Key=key)
        data: bytes = response["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise NotFound(f"pack files {key!r} not found in storage") from exc
        raise _unavailable("download", key, exc) from exc
    except BotoCoreError as exc:
        raise _unavailable("download", key, exc) from exc
    return data


def get_pack_files(key: str) -> Files:
    """The files of one stored pack version, in memory (a reload re-reads them)."""
    return unpack_archive(_get_object(key))


def fetch_pack(key: str, dest: Path) -> Path:
    """Unpack one stored pack version into `dest` (for the worker); returns `dest`.

    tarfile's `data` filter refuses anything that would land outside `dest`,
    links that point out of it, and device files, even though the archive was
    written by us: the bucket is the trust boundary, not this process.
    """
    data = _get_object(key)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    return dest


_signers: dict[tuple[str, str | None], Any] = {}


def _signer() -> Any:
    """An S3 client that presigns with SigV4 (botocore still presigns SigV2 by default, which S3 is retiring).

    Signing makes no request; the client has the region and endpoint of
    `clients.client("s3")` (cached per pair, since tests switch endpoints),
    so URLs point where the pack was stored.
    """
    cfg = settings()
    where = (cfg.aws_region, cfg.aws_endpoint_url)
    found = _signers.get(where)
    if found is None:
        ensure_local_credentials()
        found = _signers.setdefault(where, boto3.session.Session().client(
            "s3", region_name=cfg.aws_region, endpoint_url=cfg.aws_endpoint_url,
            config=Config(signature_version="s3v4"),
        ))
    return found


def presigned_pack_url(key: str, expires_s: int = 600) -> str:
    """A GET URL for one pack archive, valid `expires_s` seconds, signed with this process's credentials.

    This is how ActionRunnerFunction gets a pack although its role has no S3
    rights at all: the worker (which may read the bucket) vouches for exactly
    one object, for minutes. Signing is local (no request is made), so only
    missing credentials can fail it.
    """
    try:
        url = _signer().generate_presigned_url(
            "get_object", Params={"Bucket": pack_bucket(), "Key": key}, ExpiresIn=expires_s
        )
    except (ClientError, BotoCoreError) as exc:
        raise _unavailable("signing", key, exc) from exc
    return str(url)

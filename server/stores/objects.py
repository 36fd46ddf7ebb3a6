"""S3 objects of uploads: presigned POST targets, HEAD, verified downloads, deletes.

Every S3 call of the upload feature lives here; boto3 is synchronous, so each
call runs in a thread (``asyncio.to_thread``). Driver errors become
:class:`StoreUnavailable` (the driver's text in ``detail`` only), or a
:class:`FailedPrecondition` when their meaning is known: the object changed
(``If-Match`` failed) or is gone.

Security: object keys are built from ids only, ``graphs/{graph_id}/uploads/
{upload_id}``, and both ids must be canonical UUIDs, so no user text (file
names, table names) ever reaches a key. A presigned POST pins everything the
uploader could vary: the exact key, an exact ``content-length-range``, the
content type and server-side encryption; S3 itself refuses any other body.
A download is conditional on the ETag recorded at validation and stops at the
expected size, so a swapped or grown object is never read past what was
validated.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import botocore.exceptions

from graphgate.server.errors import FailedPrecondition, StoreUnavailable
from graphgate.server.stores.object_keys import upload_prefix

#: The server-side encryption every upload is written with (SSE-S3).
SERVER_SIDE_ENCRYPTION = "AES256"
#: Bytes read from S3 per thread hop while downloading.
DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_CHANGED_CODES = frozenset({"412", "PreconditionFailed"})


@dataclass(frozen=True, slots=True)
class PresignedPost:
    """A form upload target: POST ``fields`` then the file to ``url`` before ``expires_at``."""

    url: str
    fields: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What HEAD says about a stored object."""

    size: int
    etag: str
    content_type: str
    encryption: str | None


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A verified local copy: its size and SHA-256 (hex) of exactly the bytes written."""

    size: int
    sha256: str


def _code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _unavailable(action: str, error: Exception) -> StoreUnavailable:
    return StoreUnavailable(detail=f"S3 {action}: {error}")


def _changed() -> FailedPrecondition:
    return FailedPrecondition(
        public_message="object changed after validation", reason="OBJECT_CHANGED"
    )


def _missing() -> FailedPrecondition:
    return FailedPrecondition(
        public_message="the uploaded object is missing", reason="OBJECT_MISSING"
    )


def _pump(body: Any, handle: BinaryIO, digest: Any, chunk_bytes: int) -> int:
    # One thread hop per chunk: read, hash and write the same bytes.
    chunk: bytes = body.read(chunk_bytes)
    if chunk:
        digest.update(chunk)
        handle.write(chunk)
    return len(chunk)


class ObjectStore:
    """The upload objects of one bucket. ``client`` is a boto3 S3 client (thread-safe)."""

    def __init__(self, client: Any, bucket: str, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self._s3 = client
        self._bucket = bucket
        self._chunk_bytes = chunk_bytes

    def presign_post(
        self, key: str, *, size: int, content_type: str, expires_seconds: int
    ) -> PresignedPost:
        """A POST target accepting exactly ``size`` bytes of ``content_type`` at ``key``.

        Pure signing (no network call). The policy also requires
        ``x-amz-server-side-encryption: AES256``, so the stored object is
        encrypted at rest; S3 answers 4xx to any other length (``EntityTooLarge``),
        content type, key or missing field, and ``AccessDenied`` after expiry.
        """
        fields = {
            "Content-Type": content_type,
            "x-amz-server-side-encryption": SERVER_SIDE_ENCRYPTION,
        }
        conditions: list[Any] = [
            ["content-length-range", size, size],
            {"Content-Type": content_type},
            {"x-amz-server-side-encryption": SERVER_SIDE_ENCRYPTION},
        ]
        issued = datetime.now(UTC)
        try:
            post = self._s3.generate_presigned_post(
                Bucket=self._bucket,
                Key=key,
                Fields=fields,
                Conditions=conditions,
                ExpiresIn=expires_seconds,
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise _unavailable("presign", error) from error
        return PresignedPost(
            url=str(post["url"]),
            fields={str(k): str(v) for k, v in post["fields"].items()},
            expires_at=issued + timedelta(seconds=expires_seconds),
        )

    async def head(self, key: str) -> ObjectInfo | None:
        """The stored object's size, ETag, type and encryption; None if there is none."""
        try:
            answer = await asyncio.to_thread(self._s3.head_object, Bucket=self._bucket, Key=key)
        except botocore.exceptions.ClientError as error:
            if _code(error) in _MISSING_CODES:
                return None
            raise _unavailable("head", error) from error
        except botocore.exceptions.BotoCoreError as error:
            raise _unavailable("head", error) from error
        return ObjectInfo(
            size=int(answer["ContentLength"]),
            etag=str(answer["ETag"]),
            content_type=str(answer.get("ContentType", "")),
            encryption=answer.get("ServerSideEncryption"),
        )

    async def download(
        self,
        key: str,
        target: Path,
        *,
        if_match: str,
        expected_size: int,
        on_progress: Callable[[int], None] | None = None,
    ) -> Downloaded:
        """Copy the object into the existing file ``target`` if its ETag is still ``if_match``.

        Hashes the bytes as they are written. Raises :class:`FailedPrecondition`
        (``OBJECT_CHANGED``) when the ETag differs or the body is not exactly
        ``expected_size`` bytes, (``OBJECT_MISSING``) when it is gone, and
        :class:`StoreUnavailable` otherwise. ``on_progress(bytes_so_far)`` runs
        on the event loop after each chunk. The caller removes ``target``.
        """
        try:
            answer = await asyncio.to_thread(
                self._s3.get_object, Bucket=self._bucket, Key=key, IfMatch=if_match
            )
        except botocore.exceptions.ClientError as error:
            code = _code(error)
            if code in _CHANGED_CODES:
                raise _changed() from None
            if code in _MISSING_CODES:
                raise _missing() from None
            raise _unavailable("get", error) from error
        except botocore.exceptions.BotoCoreError as error:
            raise _unavailable("get", error) from error
        body = answer["Body"]
        digest = hashlib.sha256()
        total = 0
        try:
            with target.open("wb") as handle:  # truncates; the file keeps its 0600 mode
                while True:
                    read = await asyncio.to_thread(
                        _pump,
                        body,
                        handle,
                        digest,
                        min(self._chunk_bytes, expected_size - total + 1),
                    )
                    if read == 0:
                        break
                    total += read
                    if total > expected_size:
                        raise _changed()
                    if on_progress is not None:
                        on_progress(total)
        except (botocore.exceptions.BotoCoreError, OSError) as error:
            raise _unavailable("read", error) from error
        finally:
            await asyncio.to_thread(body.close)
        if total != expected_size:
            raise _changed()
        return Downloaded(size=total, sha256=digest.hexdigest())

    async def delete(self, key: str) -> None:
        """Delete one object; deleting a missing object succeeds."""
        try:
            await asyncio.to_thread(self._s3.delete_object, Bucket=self._bucket, Key=key)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise _unavailable("delete", error) from error

    async def delete_graph_objects(self, graph_id: str) -> int:
        """Delete every upload object of a graph (after the graph is deleted); returns the count."""
        prefix = upload_prefix(graph_id)

        def purge() -> int:
            count = 0
            paginator = self._s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self._s3.delete_objects(
                        Bucket=self._bucket, Delete={"Objects": keys, "Quiet": True}
                    )
                    count += len(keys)
            return count

        try:
            return await asyncio.to_thread(purge)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise _unavailable("delete", error) from error

"""S3 objects of backups: put with server-side encryption, get in one request, delete.

boto3 is synchronous, so every call runs in a thread (``asyncio.to_thread``).
Driver errors become :class:`StoreUnavailable` (the driver's text in
``detail`` only), or :class:`FailedPrecondition` when the object is gone.

Security: keys are built from ids only, ``graphs/{graph_id}/backups/
{backup_id}``, and both must be canonical UUIDs. Every object is written with
``ServerSideEncryption=AES256`` (SSE-S3) on top of the Fernet encryption done
before the bytes leave the process; a store that does not confirm it is
treated as failing, and the object is removed. A download is one GET streamed
to a file, so it reads one version of the object even if it is overwritten
meanwhile (re-encryption), never a mix of ranges of two.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import botocore.exceptions
from boto3.s3.transfer import TransferConfig

from graphgate.server.errors import FailedPrecondition, StoreUnavailable
from graphgate.server.stores.object_keys import backup_prefix

#: The server-side encryption every backup object is written with (SSE-S3).
SERVER_SIDE_ENCRYPTION = "AES256"
#: Bytes per read while streaming a download to disk.
DOWNLOAD_CHUNK_BYTES = 8 * 1024 * 1024

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_log = logging.getLogger(__name__)


def _code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _unavailable(action: str, error: Exception) -> StoreUnavailable:
    return StoreUnavailable(detail=f"S3 {action}: {error}")


def _missing() -> FailedPrecondition:
    return FailedPrecondition(
        public_message="the backup's stored object is missing", reason="BACKUP_OBJECT_MISSING"
    )


class BackupObjects:
    """The backup objects of one bucket. ``client`` is a boto3 S3 client (thread-safe)."""

    def __init__(self, client: Any, bucket: str, *, transfer: TransferConfig | None = None) -> None:
        self._client = client
        self._bucket = bucket
        self._transfer = transfer or TransferConfig()

    async def put(self, key: str, source: Path) -> int:
        """Upload ``source`` to ``key`` with SSE-S3; returns the stored size.

        Multipart above the transfer threshold (S3 completes it atomically:
        readers see the old object or the new one). Raises
        :class:`StoreUnavailable`, also when the store does not confirm the
        encryption or the size.
        """

        def upload() -> int:
            self._client.upload_file(
                str(source),
                self._bucket,
                key,
                ExtraArgs={"ServerSideEncryption": SERVER_SIDE_ENCRYPTION},
                Config=self._transfer,
            )
            head = self._client.head_object(Bucket=self._bucket, Key=key)
            size = int(head["ContentLength"])
            if head.get("ServerSideEncryption") != SERVER_SIDE_ENCRYPTION:
                raise StoreUnavailable(detail=f"S3 did not confirm SSE-S3 for {key}")
            if size != source.stat().st_size:
                raise StoreUnavailable(detail=f"S3 stored {size} bytes for {key}")
            return size

        try:
            return await asyncio.to_thread(upload)
        except StoreUnavailable:
            await self.delete(key)
            raise
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise _unavailable("put", error) from error

    async def get(self, key: str, target: Path) -> int:
        """Download ``key`` into the new file ``target`` in one GET; returns its size.

        Raises :class:`FailedPrecondition` (``BACKUP_OBJECT_MISSING``),
        :class:`StoreUnavailable` (also for a short read). Memory: one chunk.
        """

        def download() -> int:
            answer = self._client.get_object(Bucket=self._bucket, Key=key)
            expected = int(answer["ContentLength"])
            written = 0
            body = answer["Body"]
            try:
                with target.open("xb") as handle:
                    for chunk in body.iter_chunks(DOWNLOAD_CHUNK_BYTES):
                        written += handle.write(chunk)
            finally:
                body.close()
            if written != expected:
                raise StoreUnavailable(detail=f"S3 sent {written} of {expected} bytes of {key}")
            return written

        try:
            return await asyncio.to_thread(download)
        except botocore.exceptions.ClientError as error:
            if _code(error) in _MISSING_CODES:
                raise _missing() from error
            raise _unavailable("get", error) from error
        except botocore.exceptions.BotoCoreError as error:
            raise _unavailable("get", error) from error

    async def delete(self, key: str) -> None:
        """Delete one object; never raises (a leftover is logged, not fatal)."""
        try:
            await asyncio.to_thread(self._client.delete_object, Bucket=self._bucket, Key=key)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            _log.warning("backup object %s could not be deleted", key, exc_info=True)

    async def delete_graph(self, graph_id: str) -> int:
        """Delete every backup object of a graph; returns how many.

        Raises :class:`StoreUnavailable`.
        """
        prefix = backup_prefix(graph_id)

        def delete_all() -> int:
            deleted = 0
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=prefix
            )
            for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
                if keys:  # at most 1000 per page, the limit of one DeleteObjects
                    answer = self._client.delete_objects(
                        Bucket=self._bucket, Delete={"Objects": keys, "Quiet": True}
                    )
                    if errors := answer.get("Errors"):
                        raise StoreUnavailable(detail=f"S3 delete under {prefix}: {errors}")
                    deleted += len(keys)
            return deleted

        try:
            return await asyncio.to_thread(delete_all)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise _unavailable("delete", error) from error

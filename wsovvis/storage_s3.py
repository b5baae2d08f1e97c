"""The S3 backend of :mod:`wsovvis.storage`: ``s3://`` and ``minio://`` URIs, through one MinIO client.

An object is uploaded from a finished local file in one PUT (or one completed multipart upload), so readers see the
whole object or none. Transient errors (connection, timeout, server faults, ``SlowDown``...) are retried with
exponential backoff (``storage.RETRY_ATTEMPTS`` tries, the first wait ``storage.RETRY_BASE_DELAY``); what still fails
becomes the project's error, naming the URI and the endpoint of the client that was used.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar
from xml.etree import ElementTree

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from urllib3.exceptions import HTTPError as Urllib3Error

from wsovvis import storage
from wsovvis.errors import InputError, StorageError
from wsovvis.storage import ObjectStat, S3Location, S3Settings, StorageNotFoundError, basename, parse_s3
from wsovvis.storage_local import atomic_write

log = logging.getLogger(__name__)

T = TypeVar("T")

_TRANSIENT_S3_CODES = {
    "InternalError",
    "SlowDown",
    "ServiceUnavailable",
    "RequestTimeout",
    "OperationAborted",
}
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken"}


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, S3Error):
        return exc.code in _TRANSIENT_S3_CODES
    return isinstance(exc, (ServerError, Urllib3Error, ConnectionError, TimeoutError))


_stores: dict[tuple[int, S3Settings], S3Store] = {}


class S3Store(storage.Store):
    """S3 at the endpoint of ``settings``, with the keys of ``settings``."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        # urllib3's own retries are off: retry() is the one retry layer, so a dead endpoint fails in seconds.
        http_client = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=10, read=300),
            maxsize=16,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
        )
        self.client = Minio(
            settings.host,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            region=settings.region,
            secure=settings.secure,
            http_client=http_client,
        )

    @classmethod
    def from_env(cls) -> S3Store:
        """The store of the settings in the environment, one per process (clients do not survive fork)."""
        settings = S3Settings.from_env()
        key = (os.getpid(), settings)
        if key not in _stores:
            _stores[key] = cls(settings)
        return _stores[key]

    def retry(self, action: Callable[[], T], what: str) -> T:
        """Run ``action``, retrying transient S3/connection errors with exponential backoff."""
        attempts = storage.RETRY_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                return action()
            except Exception as exc:
                if not _is_transient(exc) or attempt == attempts:
                    raise self._translate(exc, what) from exc
                delay = storage.RETRY_BASE_DELAY * 2 ** (attempt - 1)
                log.warning("%s: %s (attempt %d/%d); retrying in %.1fs", what, exc, attempt, attempts, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _translate(self, exc: BaseException, what: str) -> BaseException:
        endpoint = self.settings.host
        if isinstance(exc, S3Error) and exc.code in ("NoSuchKey", "NoSuchBucket"):
            return StorageNotFoundError(f"{what}: does not exist ({exc.code})")
        if isinstance(exc, S3Error) and exc.code in _CREDENTIAL_CODES:
            return StorageError(
                f"{what}: S3 endpoint {endpoint} refused the credentials ({exc.code}: {exc.message}); "
                f"check {storage.ACCESS_KEY_ENV} and {storage.SECRET_KEY_ENV}"
            )
        if isinstance(exc, S3Error):
            return InputError(f"{what}: S3 error {exc.code}: {exc.message}")
        # A web server that is not S3 answers HTML: minio reports it as a non-XML response or a missing XML element.
        not_xml = isinstance(exc, ElementTree.ParseError) or str(exc).startswith("XML element")
        if isinstance(exc, InvalidResponseError) or not_xml:
            return StorageError(
                f"{what}: endpoint {endpoint} did not answer as an S3 server ({str(exc)[:200]}); "
                f"check {storage.ENDPOINT_ENV}"
            )
        if _is_transient(exc):
            return StorageError(
                f"{what}: cannot reach S3 endpoint {endpoint} ({exc}); check {storage.ENDPOINT_ENV}"
            )
        return exc

    def _stream(self, loc: S3Location, consume: Callable[[bytes], object]) -> None:
        """Pass an object's bytes to ``consume`` in 1 MiB chunks (one GET; the caller retries the whole)."""
        response = self.client.get_object(loc.bucket, loc.key)
        try:
            for chunk in response.stream(1 << 20):
                consume(chunk)
        finally:
            response.close()
            response.release_conn()

    def exists(self, uri: str | os.PathLike[str]) -> bool:
        loc = parse_s3(os.fspath(uri))

        def stat() -> bool:
            try:
                self.client.stat_object(loc.bucket, loc.key)
                return True
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                    return False
                raise

        return self.retry(stat, f"stat {uri}")

    def stat(self, uri: str | os.PathLike[str]) -> ObjectStat:
        loc = parse_s3(os.fspath(uri))
        info = self.retry(lambda: self.client.stat_object(loc.bucket, loc.key), f"stat {uri}")
        return ObjectStat(int(info.size), str(info.etag))

    def sha256(self, uri: str | os.PathLike[str]) -> str:
        loc = parse_s3(os.fspath(uri))

        def get() -> str:
            digest = hashlib.sha256()
            self._stream(loc, digest.update)
            return digest.hexdigest()

        return self.retry(get, f"read {uri}")

    def read_bytes(self, uri: str | os.PathLike[str]) -> bytes:
        loc = parse_s3(os.fspath(uri))

        def get() -> bytes:
            response = self.client.get_object(loc.bucket, loc.key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self.retry(get, f"read {uri}")

    def read_buffer(self, uri: str | os.PathLike[str]) -> bytes:
        return self.read_bytes(uri)

    def listdir(self, uri: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
        loc = parse_s3(os.fspath(uri))
        prefix = f"{loc.key}/" if loc.key else ""

        def list_children() -> tuple[list[str], list[str]]:
            dirs, files = [], []
            for obj in self.client.list_objects(loc.bucket, prefix=prefix, recursive=False):
                name = obj.object_name[len(prefix) :]
                if obj.is_dir:
                    dirs.append(name.rstrip("/"))
                elif name:
                    files.append(name)
            return sorted(dirs), sorted(files)

        return self.retry(list_children, f"list {uri}")

    def walk_files(self, uri: str | os.PathLike[str]) -> list[str]:
        loc = parse_s3(os.fspath(uri))
        prefix = f"{loc.key}/" if loc.key else ""

        def list_all() -> list[str]:
            objects = self.client.list_objects(loc.bucket, prefix=prefix, recursive=True)
            return sorted(o.object_name[len(prefix) :] for o in objects if not o.is_dir)

        return self.retry(list_all, f"list {uri}")

    def download(self, uri: str | os.PathLike[str], destination: Path) -> None:
        loc = parse_s3(os.fspath(uri))
        with atomic_write(destination, "wb") as handle:

            def get() -> None:
                handle.seek(0)
                handle.truncate()
                self._stream(loc, handle.write)

            self.retry(get, f"download {uri}")

    @contextlib.contextmanager
    def local_file(
        self, uri: str | os.PathLike[str], scratch: str | os.PathLike[str] | None
    ) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(dir=scratch, prefix="wsovvis-") as tmp:
            path = Path(tmp) / basename(os.fspath(uri))
            self.download(uri, path)
            yield path

    def remove_partial_writes(self, folder: str | os.PathLike[str], targets: Iterable[str]) -> int:
        return 0  # S3 never holds partial objects

    @contextlib.contextmanager
    def open_atomic(self, uri: str | os.PathLike[str], mode: str) -> Iterator[IO[Any]]:
        with tempfile.TemporaryDirectory(prefix="wsovvis-up-") as tmp:
            staged = Path(tmp) / "object"
            with open(staged, mode) as handle:
                yield handle
            self.upload(staged, uri)

    def write_bytes(self, uri: str | os.PathLike[str], data: bytes) -> str | None:
        loc = parse_s3(os.fspath(uri))
        written = self.retry(
            lambda: self.client.put_object(loc.bucket, loc.key, io.BytesIO(data), len(data)), f"write {uri}"
        )
        return str(written.etag)

    def upload(self, source: Path, uri: str | os.PathLike[str]) -> None:
        loc = parse_s3(os.fspath(uri))
        self.retry(
            lambda: self.client.fput_object(loc.bucket, loc.key, str(source)), f"upload {source} to {uri}"
        )

    def delete(self, uri: str | os.PathLike[str]) -> None:
        loc = parse_s3(os.fspath(uri))
        self.retry(lambda: self.client.remove_object(loc.bucket, loc.key), f"delete {uri}")

    def ensure_bucket(self, uri: str) -> None:
        """Create the bucket of ``uri`` if it does not exist (for dev clusters and tests)."""
        loc = parse_s3(uri)

        def make() -> None:
            if not self.client.bucket_exists(loc.bucket):
                self.client.make_bucket(loc.bucket)

        self.retry(make, f"create bucket {loc.bucket}")

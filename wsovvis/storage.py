"""Object storage: every path argument of every stage is a local path or an ``s3://bucket/key`` URI.

KFP's ``minio://bucket/key`` form is treated as S3. The endpoint and credentials come from the environment:
``AWS_ENDPOINT_URL`` (or ``S3_ENDPOINT``), ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and optionally
``AWS_REGION``. An endpoint without a scheme (``seaweedfs.kubeflow:9000``) is plain HTTP, as in-cluster object
stores are; ``https://`` selects TLS.

Each function hands its URI to one of two backends, chosen once from the URI's form: the local file system
(:mod:`wsovvis.storage_local`) or S3 (:mod:`wsovvis.storage_s3`), both behind one interface (:class:`Store`).
Writes are atomic: a local file is written beside its destination and renamed into place; an S3 object is
uploaded from a finished local file in one PUT (or one completed multipart upload), so readers see the whole
object or none. Transient S3 errors are retried with exponential backoff. JSON files: :mod:`wsovvis.jsonio`.

Why not fsspec (with s3fs): its shape is this module's (one interface, one class per backend, chosen from the
URI), but it brings botocore and aiobotocore into every image for the handful of operations used here, while the
atomic writes, the ``minio://`` alias, the retry policy and the errors naming the URI would still be ours; the
MinIO client is all it needs.
"""

from __future__ import annotations

import contextlib
import functools
import mmap
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import ParseResult, urlparse

from wsovvis.errors import InputError, UsageError

REMOTE_SCHEMES = ("s3", "minio")
# The retry policy of S3 requests (wsovvis.storage_s3): attempts, and the first wait, doubled at each retry.
RETRY_ATTEMPTS = 5
RETRY_BASE_DELAY = 0.5


class StorageNotFoundError(InputError, FileNotFoundError):
    """The object or file does not exist."""


# The environment variables every process of the project reads S3 from (``S3_ENDPOINT`` is also read, as a fallback).
ENDPOINT_ENV = "AWS_ENDPOINT_URL"
ACCESS_KEY_ENV = "AWS_ACCESS_KEY_ID"
SECRET_KEY_ENV = "AWS_SECRET_ACCESS_KEY"
REGION_ENV = "AWS_REGION"


@dataclass(frozen=True)
class S3Settings:
    """Where S3 is and the keys to it, as this process reads them from its environment (:meth:`from_env`)."""

    endpoint: str = ""  # as given: http(s)://host[:port], or host[:port] for plain HTTP; "" for AWS
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    region: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> S3Settings:
        env = dict(os.environ if env is None else env)
        return cls(
            endpoint=env.get(ENDPOINT_ENV) or env.get("S3_ENDPOINT") or "",
            access_key=env.get(ACCESS_KEY_ENV) or None,
            secret_key=env.get(SECRET_KEY_ENV) or None,
            region=env.get(REGION_ENV) or env.get("AWS_DEFAULT_REGION") or None,
        )

    def __post_init__(self) -> None:
        self._parsed()

    @property
    def host(self) -> str:
        """``host[:port]`` of the endpoint."""
        return self._parsed().netloc

    @property
    def secure(self) -> bool:
        """Whether the endpoint speaks TLS (``https://``, and AWS)."""
        return self._parsed().scheme == "https"

    def _parsed(self) -> ParseResult:
        url = self.endpoint or "https://s3.amazonaws.com"
        parsed = urlparse(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UsageError(
                f"S3 endpoint {url!r} ({ENDPOINT_ENV} / S3_ENDPOINT) is not http(s)://host[:port]"
            )
        return parsed


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def is_remote(uri: str | os.PathLike[str]) -> bool:
    return isinstance(uri, str) and uri.split("://", 1)[0] in REMOTE_SCHEMES and "://" in uri


_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def parse_s3(uri: str) -> S3Location:
    scheme, _, rest = uri.partition("://")
    if scheme not in REMOTE_SCHEMES:
        raise UsageError(f"{uri}: not an s3:// or minio:// URI")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise UsageError(f"{uri}: no bucket name")
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise UsageError(
            f"{uri}: {bucket!r} is not an S3 bucket name (3-63 characters: a-z, 0-9, '.', '-'; a letter or digit "
            "at both ends)"
        )
    return S3Location(bucket, key.strip("/"))


def local_path(uri: str | os.PathLike[str]) -> Path:
    text = os.fspath(uri)
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif "://" in text:
        raise UsageError(f"{text}: unknown URI scheme; use a local path, s3:// or minio://")
    return Path(text)


def join(base: str | os.PathLike[str], *parts: str) -> str:
    """Join path components; S3 keys always use '/'."""
    base = os.fspath(base)
    if is_remote(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts if p)])
    return os.path.join(base, *parts)


def _location(uri: str | os.PathLike[str]) -> str:
    if is_remote(uri):
        loc = parse_s3(os.fspath(uri))
        return f"s3://{loc.bucket}/{loc.key}"
    return os.path.realpath(local_path(uri))


def check_outputs(
    outputs: dict[str, str | os.PathLike[str] | None], inputs: dict[str, str | os.PathLike[str] | None]
) -> None:
    """Refuse, before any work, an output on the path of an input or of another output (flag -> path)."""
    given_inputs = {_location(uri): flag for flag, uri in inputs.items() if uri}
    seen: dict[str, str] = {}
    for flag, uri in outputs.items():
        if not uri:
            continue
        where = _location(uri)
        if where in given_inputs:
            raise UsageError(
                f"{flag} {os.fspath(uri)} is also the input {given_inputs[where]}; writing it would destroy the "
                "input: give the output another path"
            )
        if where in seen:
            raise UsageError(
                f"{seen[where]} and {flag} are both {os.fspath(uri)}; give each output its own path"
            )
        seen[where] = flag


def basename(uri: str) -> str:
    return (
        uri.rstrip("/").rsplit("/", 1)[-1] if is_remote(uri) else os.path.basename(os.fspath(uri).rstrip("/"))
    )


# --------------------------------------------------------------------------------------------------- backends


@dataclass(frozen=True)
class ObjectStat:
    """Size in bytes and, for an S3 object, its ETag: a digest the server computes from the content at each write
    (a rewrite with other bytes gets another one); None for a local file."""

    size: int
    etag: str | None


class Store(ABC):
    """One kind of storage, as fsspec's AbstractFileSystem is one kind of file system: each method does for the URIs
    of its kind what this module's function of the same name does (``download`` is given a destination whose folder
    exists). :func:`_store` picks the kind from the URI; callers use the module's functions, which build the rest
    (sizes, text, trees) on these."""

    @abstractmethod
    def exists(self, uri: str | os.PathLike[str]) -> bool: ...

    @abstractmethod
    def stat(self, uri: str | os.PathLike[str]) -> ObjectStat: ...

    @abstractmethod
    def sha256(self, uri: str | os.PathLike[str]) -> str: ...

    @abstractmethod
    def read_bytes(self, uri: str | os.PathLike[str]) -> bytes: ...

    @abstractmethod
    def read_buffer(self, uri: str | os.PathLike[str]) -> bytes | mmap.mmap: ...

    @abstractmethod
    def listdir(self, uri: str | os.PathLike[str]) -> tuple[list[str], list[str]]: ...

    @abstractmethod
    def walk_files(self, uri: str | os.PathLike[str]) -> list[str]: ...

    @abstractmethod
    def download(self, uri: str | os.PathLike[str], destination: Path) -> None: ...

    @abstractmethod
    def local_file(
        self, uri: str | os.PathLike[str], scratch: str | os.PathLike[str] | None
    ) -> contextlib.AbstractContextManager[Path]: ...

    @abstractmethod
    def remove_partial_writes(self, folder: str | os.PathLike[str], targets: Iterable[str]) -> int: ...

    @abstractmethod
    def open_atomic(
        self, uri: str | os.PathLike[str], mode: str
    ) -> contextlib.AbstractContextManager[IO[Any]]: ...

    @abstractmethod
    def write_bytes(self, uri: str | os.PathLike[str], data: bytes) -> str | None: ...

    @abstractmethod
    def upload(self, source: Path, uri: str | os.PathLike[str]) -> None: ...

    @abstractmethod
    def delete(self, uri: str | os.PathLike[str]) -> None: ...


def _store(uri: str | os.PathLike[str]) -> Store:
    """The backend of ``uri``: S3 for ``s3://`` and ``minio://``, else the local file system. A backend's module is
    imported when a URI first needs it (as fsspec's registry does): the S3 one brings the MinIO client."""
    if is_remote(uri):
        from wsovvis.storage_s3 import S3Store

        return S3Store.from_env()
    return _local_store()


@functools.cache
def _local_store() -> Store:
    from wsovvis.storage_local import LocalStore

    return LocalStore()


# --------------------------------------------------------------------------------------------------- reading


def exists(uri: str | os.PathLike[str]) -> bool:
    return _store(uri).exists(uri)


def stat(uri: str | os.PathLike[str]) -> ObjectStat:
    """Size (and ETag) of one file or object, from one HEAD request on S3."""
    return _store(uri).stat(uri)


def size(uri: str | os.PathLike[str]) -> int:
    """Size in bytes of one file or object."""
    return stat(uri).size


def sha256(uri: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of one file or object, read in chunks."""
    return _store(uri).sha256(uri)


def read_bytes(uri: str | os.PathLike[str]) -> bytes:
    return _store(uri).read_bytes(uri)


def read_buffer(uri: str | os.PathLike[str]) -> bytes | mmap.mmap:
    """The bytes of a file or object, as :func:`read_bytes`; a local file is mapped into memory rather than copied
    (no copy to make, and processes forked after share its pages)."""
    return _store(uri).read_buffer(uri)


def read_text(uri: str | os.PathLike[str]) -> str:
    try:
        return read_bytes(uri).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{os.fspath(uri)}: not UTF-8 text ({exc})") from exc


def listdir(uri: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """Immediate children of a folder or prefix: (sorted folder names, sorted file names)."""
    return _store(uri).listdir(uri)


def walk_files(uri: str | os.PathLike[str]) -> list[str]:
    """All files below a folder or prefix, as sorted '/'-separated paths relative to it."""
    return _store(uri).walk_files(uri)


def download(uri: str, destination: str | os.PathLike[str]) -> Path:
    """Copy one object or file to a local path, atomically."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    _store(uri).download(uri, destination)
    return destination


def download_tree(uri: str, destination: str | os.PathLike[str]) -> list[Path]:
    """Copy every file below a folder or prefix into a local folder; returns the local paths."""
    destination = Path(destination)
    return [download(join(uri, rel), destination / rel) for rel in walk_files(uri)]


@contextlib.contextmanager
def local_file(uri: str | os.PathLike[str], scratch: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A local path holding the file: the file itself when local, else a temporary download."""
    with _store(uri).local_file(uri, scratch) as path:
        yield path


# --------------------------------------------------------------------------------------------------- writing


def remove_partial_writes(folder: str | os.PathLike[str], targets: Iterable[str]) -> int:
    """Delete what interrupted atomic writes of ``targets`` left in a local folder; returns how many.

    Only the temporaries of the given names are touched, so writers of other names in the same folder are
    safe. S3 never holds partial objects, so a remote folder is left alone.
    """
    return _store(folder).remove_partial_writes(folder, targets)


@contextlib.contextmanager
def open_atomic(uri: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Write through a file object; the destination appears whole when the block exits, or not at all."""
    if mode not in ("wb", "w"):
        raise ValueError(f"open_atomic mode must be 'wb' or 'w', not {mode!r}")
    with _store(uri).open_atomic(uri, mode) as handle:
        yield handle


def write_bytes(uri: str | os.PathLike[str], data: bytes) -> str | None:
    """Write ``data`` atomically; return the S3 object's ETag as the server gave it (None for a local file)."""
    return _store(uri).write_bytes(uri, data)


def write_text(uri: str | os.PathLike[str], text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def upload(source: str | os.PathLike[str], uri: str) -> None:
    """Copy a local file to ``uri`` (S3 or local), atomically."""
    _store(uri).upload(Path(source), uri)


def upload_tree(source: str | os.PathLike[str], uri: str) -> list[str]:
    """Copy every file below a local folder to ``uri``; returns the destination URIs."""
    source = Path(source)
    written = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        destination = join(uri, path.relative_to(source).as_posix())
        upload(path, destination)
        written.append(destination)
    return written


def delete(uri: str | os.PathLike[str]) -> None:
    """Remove one object or file; absent is fine."""
    _store(uri).delete(uri)


def ensure_bucket(uri: str) -> None:
    """Create the bucket of an S3 URI if it does not exist (for dev clusters and tests)."""
    from wsovvis.storage_s3 import S3Store

    S3Store.from_env().ensure_bucket(uri)

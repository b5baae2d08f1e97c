"""Object storage: every path argument of every stage is a local path or an ``s3://bucket/key`` URI.

KFP's ``minio://bucket/key`` form is treated as S3. The endpoint and credentials come from the environment:
``AWS_ENDPOINT_URL`` (or ``S3_ENDPOINT``), ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and optionally
``AWS_REGION``. An endpoint without a scheme (``seaweedfs.kubeflow:9000``) is plain HTTP, as in-cluster object
stores are; ``https://`` selects TLS.

Writes are atomic: a local file is written beside its destination and renamed into place; an S3 object is
uploaded from a finished local file in one PUT (or one completed multipart upload), so readers see the whole
object or none. Transient S3 errors are retried with exponential backoff.

Why not fsspec (with s3fs): it gives the same calls on both kinds of path, but brings botocore and aiobotocore
into every image for the handful of operations used here, while the atomic writes, the ``minio://`` alias, the
retry policy and the errors naming the URI would still be this module's; the MinIO client is all it needs.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import math
import mmap
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import ParseResult, urlparse
from xml.etree import ElementTree

import msgspec

from wsovvis import names
from wsovvis.errors import InputError, StorageError, UsageError

log = logging.getLogger(__name__)

T = TypeVar("T")

REMOTE_SCHEMES = ("s3", "minio")
RETRY_ATTEMPTS = 5
RETRY_BASE_DELAY = 0.5
_TRANSIENT_S3_CODES = {
    "InternalError",
    "SlowDown",
    "ServiceUnavailable",
    "RequestTimeout",
    "OperationAborted",
}


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
                f"S3 endpoint {url!r} ({ENDPOINT_ENV} / S3_ENDPOINT, or s3.endpoint) is not http(s)://host[:port]"
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


# --------------------------------------------------------------------------------------------------- S3 client

_clients: dict[tuple[int, S3Settings], Any] = {}


def s3_client(settings: S3Settings | None = None) -> Any:
    """A Minio client for the configured endpoint, one per process (clients do not survive fork)."""
    import certifi
    import urllib3
    from minio import Minio

    settings = settings or S3Settings.from_env()
    key = (os.getpid(), settings)
    if key not in _clients:
        # urllib3's own retries are off: with_retries() is the one retry layer, so a dead endpoint fails in seconds.
        http_client = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=10, read=300),
            maxsize=16,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
        )
        _clients[key] = Minio(
            settings.host,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            region=settings.region,
            secure=settings.secure,
            http_client=http_client,
        )
    return _clients[key]


def _is_transient(exc: BaseException) -> bool:
    from minio.error import S3Error, ServerError
    from urllib3.exceptions import HTTPError as Urllib3Error

    if isinstance(exc, S3Error):
        return exc.code in _TRANSIENT_S3_CODES
    return isinstance(exc, (ServerError, Urllib3Error, ConnectionError, TimeoutError))


def with_retries(action: Callable[[], T], what: str, attempts: int = RETRY_ATTEMPTS) -> T:
    """Run ``action``, retrying transient S3/connection errors with exponential backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if not _is_transient(exc) or attempt == attempts:
                raise _translate(exc, what) from exc
            delay = RETRY_BASE_DELAY * 2 ** (attempt - 1)
            log.warning("%s: %s (attempt %d/%d); retrying in %.1fs", what, exc, attempt, attempts, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken"}


def _translate(exc: BaseException, what: str) -> BaseException:
    from minio.error import InvalidResponseError, S3Error

    endpoint = S3Settings.from_env().host
    if isinstance(exc, S3Error) and exc.code in ("NoSuchKey", "NoSuchBucket"):
        return StorageNotFoundError(f"{what}: does not exist ({exc.code})")
    if isinstance(exc, S3Error) and exc.code in _CREDENTIAL_CODES:
        return StorageError(
            f"{what}: S3 endpoint {endpoint} refused the credentials ({exc.code}: {exc.message}); "
            f"check {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}"
        )
    if isinstance(exc, S3Error):
        return InputError(f"{what}: S3 error {exc.code}: {exc.message}")
    # A web server that is not S3 answers HTML: minio reports it as a non-XML response or a missing XML element.
    not_xml = isinstance(exc, ElementTree.ParseError) or str(exc).startswith("XML element")
    if isinstance(exc, InvalidResponseError) or not_xml:
        return StorageError(
            f"{what}: endpoint {endpoint} did not answer as an S3 server ({str(exc)[:200]}); check {ENDPOINT_ENV}"
        )
    if _is_transient(exc):
        return StorageError(f"{what}: cannot reach S3 endpoint {endpoint} ({exc}); check {ENDPOINT_ENV}")
    return exc


# --------------------------------------------------------------------------------------------------- reading


def exists(uri: str | os.PathLike[str]) -> bool:
    if not is_remote(uri):
        return local_path(uri).exists()
    loc = parse_s3(uri)
    from minio.error import S3Error

    def stat() -> bool:
        try:
            s3_client().stat_object(loc.bucket, loc.key)
            return True
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                return False
            raise

    return with_retries(stat, f"stat {uri}")


@dataclass(frozen=True)
class ObjectStat:
    """Size in bytes and, for an S3 object, its ETag: a digest the server computes from the content at each write
    (a rewrite with other bytes gets another one); None for a local file."""

    size: int
    etag: str | None


def stat(uri: str | os.PathLike[str]) -> ObjectStat:
    """Size (and ETag) of one file or object, from one HEAD request on S3."""
    if not is_remote(uri):
        path = local_path(uri)
        try:
            return ObjectStat(path.stat().st_size, None)
        except FileNotFoundError as exc:
            raise StorageNotFoundError(f"{path}: does not exist") from exc
    loc = parse_s3(uri)
    info = with_retries(lambda: s3_client().stat_object(loc.bucket, loc.key), f"stat {uri}")
    return ObjectStat(int(info.size), str(info.etag))


def size(uri: str | os.PathLike[str]) -> int:
    """Size in bytes of one file or object."""
    return stat(uri).size


def _stream_object(loc: S3Location, consume: Callable[[bytes], object]) -> None:
    """Pass an object's bytes to ``consume`` in 1 MiB chunks (one GET; the caller retries the whole)."""
    response = s3_client().get_object(loc.bucket, loc.key)
    try:
        for chunk in response.stream(1 << 20):
            consume(chunk)
    finally:
        response.close()
        response.release_conn()


def sha256(uri: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of one file or object, read in chunks."""
    digest = hashlib.sha256()
    if not is_remote(uri):
        path = local_path(uri)
        try:
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        except FileNotFoundError as exc:
            raise StorageNotFoundError(f"{path}: does not exist") from exc
        return digest.hexdigest()
    loc = parse_s3(uri)

    def get() -> str:
        partial = hashlib.sha256()
        _stream_object(loc, partial.update)
        return partial.hexdigest()

    return with_retries(get, f"read {uri}")


def read_bytes(uri: str | os.PathLike[str]) -> bytes:
    if not is_remote(uri):
        path = local_path(uri)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise StorageNotFoundError(f"{path}: does not exist") from exc
    loc = parse_s3(uri)

    def get() -> bytes:
        response = s3_client().get_object(loc.bucket, loc.key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    return with_retries(get, f"read {uri}")


def read_buffer(uri: str | os.PathLike[str]) -> bytes | mmap.mmap:
    """The bytes of a file or object, as :func:`read_bytes`; a local file is mapped into memory rather than copied
    (no copy to make, and processes forked after share its pages)."""
    if is_remote(uri):
        return read_bytes(uri)
    path = local_path(uri)
    try:
        with open(path, "rb") as handle:
            return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError as exc:
        raise StorageNotFoundError(f"{path}: does not exist") from exc
    except (ValueError, OSError):  # an empty file, or a file system that does not map files
        return read_bytes(uri)


def read_text(uri: str | os.PathLike[str]) -> str:
    try:
        return read_bytes(uri).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{os.fspath(uri)}: not UTF-8 text ({exc})") from exc


class _NotFiniteError(ValueError):
    pass


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFiniteError(f"{text} overflows to {value}")
    return value


def _no_constant(name: str) -> float:
    raise _NotFiniteError(name)


def read_json(uri: str | os.PathLike[str], *, finite: bool = False) -> Any:
    """Parse a JSON file; with ``finite``, NaN, Infinity and numbers that overflow are an InputError."""
    return parse_json(read_buffer(uri), uri, finite=finite)


def parse_json(data: bytes | mmap.mmap, uri: str | os.PathLike[str], *, finite: bool = False) -> Any:
    """Parse the bytes read from ``uri`` (named in errors), as :func:`read_json` does.

    msgspec parses first: two to three times faster than the standard library on RLE-heavy files, with the
    same values (floats correctly rounded, integers unbounded, the last of duplicate keys). What it refuses
    (NaN, Infinity, numbers out of range, lone surrogates, a byte order mark, malformed JSON) goes to the standard
    library's parser, which decides and words the error as before.
    """
    try:
        return msgspec.json.decode(data)
    except (msgspec.MsgspecError, ValueError, RecursionError):  # invalid UTF-8 is a UnicodeDecodeError
        pass
    strict: dict[str, Any] = {"parse_constant": _no_constant, "parse_float": _finite_float} if finite else {}
    try:
        return json.loads(data if isinstance(data, bytes) else bytes(data), **strict)
    except _NotFiniteError as exc:
        raise InputError(
            f"{os.fspath(uri)}: holds a number that is not finite ({exc}); JSON allows finite numbers only"
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{os.fspath(uri)}: not valid JSON ({exc})") from exc


def listdir(uri: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """Immediate children of a folder or prefix: (sorted folder names, sorted file names)."""
    if not is_remote(uri):
        path = local_path(uri)
        if not path.is_dir():
            raise StorageNotFoundError(f"{path}: not a folder")
        dirs, files = [], []
        for entry in os.scandir(path):
            (dirs if entry.is_dir() else files).append(entry.name)
        return sorted(dirs), sorted(files)
    loc = parse_s3(uri)
    prefix = f"{loc.key}/" if loc.key else ""

    def list_children() -> tuple[list[str], list[str]]:
        dirs, files = [], []
        for obj in s3_client().list_objects(loc.bucket, prefix=prefix, recursive=False):
            name = obj.object_name[len(prefix) :]
            if obj.is_dir:
                dirs.append(name.rstrip("/"))
            elif name:
                files.append(name)
        return sorted(dirs), sorted(files)

    return with_retries(list_children, f"list {uri}")


def walk_files(uri: str | os.PathLike[str]) -> list[str]:
    """All files below a folder or prefix, as sorted '/'-separated paths relative to it."""
    if not is_remote(uri):
        root = local_path(uri)
        if not root.is_dir():
            raise StorageNotFoundError(f"{root}: not a folder")
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    loc = parse_s3(uri)
    prefix = f"{loc.key}/" if loc.key else ""

    def list_all() -> list[str]:
        objects = s3_client().list_objects(loc.bucket, prefix=prefix, recursive=True)
        return sorted(o.object_name[len(prefix) :] for o in objects if not o.is_dir)

    return with_retries(list_all, f"list {uri}")


def download(uri: str, destination: str | os.PathLike[str]) -> Path:
    """Copy one object or file to a local path, atomically."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_local(destination, "wb") as handle:
        if is_remote(uri):
            loc = parse_s3(uri)

            def get() -> None:
                handle.seek(0)
                handle.truncate()
                _stream_object(loc, handle.write)

            with_retries(get, f"download {uri}")
        else:
            source = local_path(uri)
            try:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, handle, 1 << 20)
            except FileNotFoundError as exc:
                raise StorageNotFoundError(f"{source}: does not exist") from exc
    return destination


def download_tree(uri: str, destination: str | os.PathLike[str]) -> list[Path]:
    """Copy every file below a folder or prefix into a local folder; returns the local paths."""
    destination = Path(destination)
    return [download(join(uri, rel), destination / rel) for rel in walk_files(uri)]


@contextlib.contextmanager
def local_file(uri: str | os.PathLike[str], scratch: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A local path holding the file: the file itself when local, else a temporary download."""
    if not is_remote(uri):
        path = local_path(uri)
        if not path.exists():
            raise StorageNotFoundError(f"{path}: does not exist")
        yield path
        return
    with tempfile.TemporaryDirectory(dir=scratch, prefix="wsovvis-") as tmp:
        yield download(os.fspath(uri), Path(tmp) / basename(os.fspath(uri)))


# --------------------------------------------------------------------------------------------------- writing


# ".<name>.<8 hex>.tmp": the temporary of a long name is cut so that it is no longer than the name may be.
_TMP_STEM_MAX = names.NAME_MAX - len("..01234567.tmp")
# Errors of a write that say the location is unusable (full, read-only, over a size limit), not the data.
_LOCATION_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def _temporary_stem(name: str) -> str:
    return names.truncate_bytes(name, _TMP_STEM_MAX)


def _open_temporary(path: Path) -> tuple[int, Path]:
    """A new file beside ``path``, created with mode 0666 so the umask applies as to any other tool's files."""
    while True:
        tmp = path.parent / f".{_temporary_stem(path.name)}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue


def _write_fault(path: Path, exc: OSError) -> StorageError:
    return StorageError(
        f"{path}: cannot write ({exc.strerror or exc}); earlier outputs are left as they were"
    )


@contextlib.contextmanager
def _atomic_local(path: Path, mode: str) -> Iterator[IO[Any]]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _open_temporary(path)
    except OSError as exc:
        raise _write_fault(path, exc) from exc
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in _LOCATION_ERRNOS:
            raise _write_fault(path, exc) from exc
        raise


def remove_partial_writes(folder: str | os.PathLike[str], targets: Iterable[str]) -> int:
    """Delete what interrupted atomic writes of ``targets`` left in a local folder; returns how many.

    Only the temporaries of the given names are touched, so writers of other names in the same folder are
    safe. S3 never holds partial objects, so a remote folder is left alone.
    """
    if is_remote(folder):
        return 0
    path = local_path(folder)
    if not path.is_dir():
        return 0
    wanted = {_temporary_stem(name) for name in targets}
    removed = 0
    for entry in os.scandir(path):
        leftover = entry.name.startswith(".") and entry.name.endswith(".tmp")
        if leftover and entry.name[1:].rsplit(".", 2)[0] in wanted:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed


@contextlib.contextmanager
def open_atomic(uri: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Write through a file object; the destination appears whole when the block exits, or not at all."""
    if mode not in ("wb", "w"):
        raise ValueError(f"open_atomic mode must be 'wb' or 'w', not {mode!r}")
    if not is_remote(uri):
        with _atomic_local(local_path(uri), mode) as handle:
            yield handle
        return
    with tempfile.TemporaryDirectory(prefix="wsovvis-up-") as tmp:
        staged = Path(tmp) / "object"
        with open(staged, mode) as handle:
            yield handle
        upload(staged, os.fspath(uri))


def write_bytes(uri: str | os.PathLike[str], data: bytes) -> str | None:
    """Write ``data`` atomically; return the S3 object's ETag as the server gave it (None for a local file)."""
    if is_remote(uri):
        loc = parse_s3(os.fspath(uri))
        written = with_retries(
            lambda: s3_client().put_object(loc.bucket, loc.key, io.BytesIO(data), len(data)), f"write {uri}"
        )
        return str(written.etag)
    with _atomic_local(local_path(uri), "wb") as handle:
        handle.write(data)
    return None


def write_text(uri: str | os.PathLike[str], text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def dumps_json(obj: Any, *, indent: int | None = 2) -> bytes:
    """``json.dumps(obj, indent=indent)`` as UTF-8 bytes, byte for byte.

    The standard library encodes in C only without indentation; its compact text laid out again by msgspec (which
    copies every number and string as it stands) is the indented text, ten times sooner for a large file. NaN and
    Infinity, which msgspec refuses as JSON, take the standard library's own indenting encoder."""
    compact = json.dumps(obj, sort_keys=False)
    if indent is None:
        return compact.encode("utf-8")
    try:
        return msgspec.json.format(compact.encode("utf-8"), indent=indent)
    except msgspec.DecodeError:
        return json.dumps(obj, indent=indent, sort_keys=False).encode("utf-8")


def write_json(uri: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> None:
    write_bytes(uri, dumps_json(obj, indent=indent) + b"\n")


def upload(source: str | os.PathLike[str], uri: str) -> None:
    """Copy a local file to ``uri`` (S3 or local), atomically."""
    source = Path(source)
    if not is_remote(uri):
        with _atomic_local(local_path(uri), "wb") as handle, open(source, "rb") as src:
            shutil.copyfileobj(src, handle, 1 << 20)
        return
    loc = parse_s3(uri)
    with_retries(
        lambda: s3_client().fput_object(loc.bucket, loc.key, str(source)), f"upload {source} to {uri}"
    )


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
    if not is_remote(uri):
        with contextlib.suppress(FileNotFoundError):
            local_path(uri).unlink()
        return
    loc = parse_s3(os.fspath(uri))
    with_retries(lambda: s3_client().remove_object(loc.bucket, loc.key), f"delete {uri}")


def ensure_bucket(uri: str) -> None:
    """Create the bucket of an S3 URI if it does not exist (for dev clusters and tests)."""
    loc = parse_s3(uri)
    client = s3_client()

    def make() -> None:
        if not client.bucket_exists(loc.bucket):
            client.make_bucket(loc.bucket)

    with_retries(make, f"create bucket {loc.bucket}")

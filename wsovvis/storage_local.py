"""The local backend of :mod:`wsovvis.storage`: paths and ``file://`` URIs.

A write goes to a temporary file beside its destination (``.<name>.<8 hex>.tmp``, created with mode 0666 so the
umask applies), is synced, and is renamed into place: readers see the old file or the whole new one. A write that
fails because of the location (full, read-only, over a size limit, not permitted) is a StorageError.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mmap
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from wsovvis import names, storage
from wsovvis.errors import StorageError
from wsovvis.storage import ObjectStat, StorageNotFoundError, local_path

# ".<name>.<8 hex>.tmp": the temporary of a long name is cut so that it is no longer than the name may be.
_TMP_STEM_MAX = names.NAME_MAX - len("..01234567.tmp")
# Errors of a write that say the location is unusable (full, read-only, over a size limit), not the data.
_LOCATION_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def _missing(path: Path) -> StorageNotFoundError:
    return StorageNotFoundError(f"{path}: does not exist")


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
def atomic_write(path: Path, mode: str) -> Iterator[IO[Any]]:
    """A file object whose content becomes ``path`` when the block exits, or nothing if it raises."""
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


class LocalStore(storage.Store):
    """Local files and folders."""

    def exists(self, uri: str | os.PathLike[str]) -> bool:
        return local_path(uri).exists()

    def stat(self, uri: str | os.PathLike[str]) -> ObjectStat:
        path = local_path(uri)
        try:
            return ObjectStat(path.stat().st_size, None)
        except FileNotFoundError as exc:
            raise _missing(path) from exc

    def sha256(self, uri: str | os.PathLike[str]) -> str:
        path = local_path(uri)
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        except FileNotFoundError as exc:
            raise _missing(path) from exc
        return digest.hexdigest()

    def read_bytes(self, uri: str | os.PathLike[str]) -> bytes:
        path = local_path(uri)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise _missing(path) from exc

    def read_buffer(self, uri: str | os.PathLike[str]) -> bytes | mmap.mmap:
        path = local_path(uri)
        try:
            with open(path, "rb") as handle:
                return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError as exc:
            raise _missing(path) from exc
        except (ValueError, OSError):  # an empty file, or a file system that does not map files
            return self.read_bytes(uri)

    def listdir(self, uri: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
        path = local_path(uri)
        if not path.is_dir():
            raise StorageNotFoundError(f"{path}: not a folder")
        dirs, files = [], []
        for entry in os.scandir(path):
            (dirs if entry.is_dir() else files).append(entry.name)
        return sorted(dirs), sorted(files)

    def walk_files(self, uri: str | os.PathLike[str]) -> list[str]:
        root = local_path(uri)
        if not root.is_dir():
            raise StorageNotFoundError(f"{root}: not a folder")
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def download(self, uri: str | os.PathLike[str], destination: Path) -> None:
        source = local_path(uri)
        with atomic_write(destination, "wb") as handle:
            try:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, handle, 1 << 20)
            except FileNotFoundError as exc:
                raise _missing(source) from exc

    @contextlib.contextmanager
    def local_file(
        self, uri: str | os.PathLike[str], scratch: str | os.PathLike[str] | None
    ) -> Iterator[Path]:
        path = local_path(uri)
        if not path.exists():
            raise _missing(path)
        yield path

    def remove_partial_writes(self, folder: str | os.PathLike[str], targets: Iterable[str]) -> int:
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

    def open_atomic(
        self, uri: str | os.PathLike[str], mode: str
    ) -> contextlib.AbstractContextManager[IO[Any]]:
        return atomic_write(local_path(uri), mode)

    def write_bytes(self, uri: str | os.PathLike[str], data: bytes) -> str | None:
        with atomic_write(local_path(uri), "wb") as handle:
            handle.write(data)
        return None

    def upload(self, source: Path, uri: str | os.PathLike[str]) -> None:
        with atomic_write(local_path(uri), "wb") as handle, open(source, "rb") as src:
            shutil.copyfileobj(src, handle, 1 << 20)

    def delete(self, uri: str | os.PathLike[str]) -> None:
        with contextlib.suppress(FileNotFoundError):
            local_path(uri).unlink()

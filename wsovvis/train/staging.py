"""Local copies for training: inputs staged from S3 once per machine, outputs synced back to ``output_uri``.

Staging: on each machine, local rank 0 downloads; the others wait at a barrier. A finished copy is marked with
a ``.complete`` file beside it, so a restarted container on the same pod (same scratch volume) reuses it.

Outputs: the local output folder (detectron2's ``OUTPUT_DIR`` layout: ``model_<iter>.pth`` checkpoints and a
``last_checkpoint`` file naming the newest) is mirrored to ``output_uri``, ``last_checkpoint`` last, so the
remote copy never names a checkpoint that is not there yet.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from wsovvis import storage
from wsovvis.errors import InputError

log = logging.getLogger(__name__)

LAST_CHECKPOINT = "last_checkpoint"
DOWNLOAD_THREADS = 8
# Schemes detectron2's own PathManager downloads (model zoo, http); passed through untouched.
PASSTHROUGH_WEIGHT_SCHEMES = ("detectron2://", "http://", "https://", "catalog://")


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def scratch_name(uri: str) -> str:
    """A folder name unique to ``uri`` and readable in a listing."""
    base = storage.basename(uri) or "root"
    return f"{_digest(uri)}-{base}"


def check_input(uri: str, what: str, *, folder: bool = False) -> None:
    """Fail before any work if an input is missing, naming the config key."""
    if storage.is_remote(uri):
        if folder:
            dirs, files = storage.listdir(uri)
            present = bool(dirs or files)
        else:
            present = storage.exists(uri)
    else:
        path = storage.local_path(uri)
        present = path.is_dir() if folder else path.is_file()
    if not present:
        kind = "folder" if folder else "file"
        raise InputError(f"{what}: {kind} {uri} does not exist; check the path in the config")


def check_weights(uri: str) -> None:
    """``MODEL.WEIGHTS`` may be empty (random initialisation), a path, an s3:// URI or a detectron2 URL."""
    if not uri or uri.startswith(PASSTHROUGH_WEIGHT_SCHEMES):
        return
    check_input(uri, "MODEL.WEIGHTS")


def stage_file(uri: str, scratch: Path) -> Path:
    """A local path for ``uri``: itself when local, else a copy under ``scratch`` made once."""
    if not storage.is_remote(uri):
        return storage.local_path(uri)
    destination = scratch / scratch_name(uri) / storage.basename(uri)
    marker = destination.with_name(destination.name + ".complete")
    if not marker.exists():
        log.info("staging %s to %s", uri, destination)
        storage.download(uri, destination)
        marker.touch()
    return destination


def stage_folder(uri: str, scratch: Path) -> Path:
    """A local folder with everything below ``uri``: itself when local, else a copy under ``scratch``."""
    if not storage.is_remote(uri):
        return storage.local_path(uri)
    destination = scratch / scratch_name(uri)
    marker = destination.with_name(destination.name + ".complete")
    if not marker.exists():
        files = storage.walk_files(uri)
        log.info("staging %d files from %s to %s", len(files), uri, destination)
        with ThreadPoolExecutor(DOWNLOAD_THREADS) as pool:
            list(pool.map(lambda rel: storage.download(storage.join(uri, rel), destination / rel), files))
        marker.touch()
    return destination


def staged_path(uri: str, scratch: Path, *, folder: bool = False) -> Path:
    """Where :func:`stage_file`/:func:`stage_folder` put ``uri`` (for processes that did not download)."""
    if not storage.is_remote(uri):
        return storage.local_path(uri)
    return scratch / scratch_name(uri) if folder else scratch / scratch_name(uri) / storage.basename(uri)


def stage_weights(uri: str, scratch: Path, *, download: bool) -> str:
    """The ``MODEL.WEIGHTS`` value to give the trainer: a local path, or the URL detectron2 fetches itself."""
    if not uri or uri.startswith(PASSTHROUGH_WEIGHT_SCHEMES):
        return uri
    return os.fspath(stage_file(uri, scratch) if download else staged_path(uri, scratch))


@dataclass
class OutputSync:
    """Mirrors a local output folder to ``uri``, uploading only files that changed since the last sync."""

    local_dir: Path
    uri: str

    def __post_init__(self) -> None:
        self._uploaded: dict[str, tuple[int, int]] = {}

    def sync(self) -> list[str]:
        """Upload new and changed files; returns their relative paths."""
        if not self.local_dir.is_dir():
            return []
        changed = []
        for path in sorted(
            p for p in self.local_dir.rglob("*") if p.is_file() and not p.name.endswith(".tmp")
        ):
            rel = path.relative_to(self.local_dir).as_posix()
            stat = path.stat()
            if self._uploaded.get(rel) != (stat.st_size, stat.st_mtime_ns):
                changed.append((rel, path, (stat.st_size, stat.st_mtime_ns)))
        # last_checkpoint goes up after the checkpoint it names.
        changed.sort(key=lambda item: item[0] == LAST_CHECKPOINT)
        for rel, path, signature in changed:
            storage.upload(path, storage.join(self.uri, rel))
            self._uploaded[rel] = signature
        if changed:
            log.info("synced %d file(s) to %s", len(changed), self.uri)
        return [rel for rel, _, _ in changed]


def fetch_last_checkpoint(uri: str, local_dir: Path) -> str | None:
    """Copy the newest checkpoint under ``uri`` (and its ``last_checkpoint`` file) into ``local_dir``.

    Returns the checkpoint's file name, or None when ``uri`` holds no checkpoint yet.
    """
    marker_uri = storage.join(uri, LAST_CHECKPOINT)
    if not storage.exists(marker_uri):
        return None
    name = storage.read_text(marker_uri).strip()
    if not name or "/" in name or "\\" in name:
        raise InputError(f"{marker_uri}: does not name a checkpoint file (got {name!r})")
    checkpoint_uri = storage.join(uri, name)
    if not storage.exists(checkpoint_uri):
        raise InputError(
            f"{marker_uri} names {name}, which is not in {uri}; delete {marker_uri} to start over"
        )
    local = local_dir / name
    if not local.exists() or local.stat().st_size == 0:
        log.info("fetching checkpoint %s", checkpoint_uri)
        storage.download(checkpoint_uri, local)
    storage.write_text(local_dir / LAST_CHECKPOINT, name)
    return name

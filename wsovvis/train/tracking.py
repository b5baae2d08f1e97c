"""The Sacred run of a training job: created on the global main process only, synced to the runs URI.

Sacred's FileStorageObserver writes into a local folder (``run.json``, ``config.json``, ``cout.txt``,
``metrics.json``); the harness mirrors it to ``<runs_uri>/<id>/``, where ``<id>`` is one more than the
largest run id already there. Capture mode is ``sys``: ``fd`` deadlocks with the spawned workers.
The run's ``info`` records what produced it: the project's git commit, the third-party pins and the image.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from wsovvis import jsonio, storage
from wsovvis.train.staging import OutputSync

log = logging.getLogger(__name__)

EXPERIMENT_NAME = "wsovvis-train"
CAPTURE_MODE = "sys"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
PINS_FILE = PROJECT_ROOT / "third_party" / "pins.json"


def git_commit(env: Mapping[str, str] | None = None) -> str:
    """``WSOVVIS_GIT_COMMIT`` (set when the image is built), else ``git rev-parse HEAD``, else "unknown"."""
    env = os.environ if env is None else env
    if env.get("WSOVVIS_GIT_COMMIT"):
        return env["WSOVVIS_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def third_party_pins(path: str | os.PathLike[str] | None = None) -> Any:
    """The upstream pins (``$WSOVVIS_PINS``, else ``third_party/pins.json``), or None when there are none."""
    path = Path(path or os.environ.get("WSOVVIS_PINS") or PINS_FILE)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("cannot read %s (%s); recording no pins", path, exc)
        return None


def provenance(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if env is None else env
    return {
        "git_commit": git_commit(env),
        "third_party_pins": third_party_pins(),
        "image": env.get("WSOVVIS_IMAGE") or "unknown",
    }


def final_scalars(runs_uri: str) -> dict[str, float]:
    """The last value of each scalar the newest run with metrics recorded, and ``iterations`` (last step + 1).

    Empty when no run under ``runs_uri`` recorded a metric.
    """
    try:
        dirs, _ = storage.listdir(runs_uri)
    except storage.StorageNotFoundError:
        return {}
    for run_id in sorted((int(name) for name in dirs if name.isdigit()), reverse=True):
        metrics_uri = storage.join(runs_uri, str(run_id), "metrics.json")
        if not storage.exists(metrics_uri):
            continue
        series = {name: s for name, s in jsonio.read_json(metrics_uri).items() if s.get("steps")}
        if series:
            scalars = {name: float(s["values"][-1]) for name, s in sorted(series.items())}
            scalars["iterations"] = max(s["steps"][-1] for s in series.values()) + 1
            return scalars
    return {}


def next_run_id(runs_uri: str) -> int:
    """One more than the largest numeric run folder under ``runs_uri`` (1 for a new location)."""
    try:
        dirs, _ = storage.listdir(runs_uri)
    except storage.StorageNotFoundError:
        return 1
    return max((int(name) for name in dirs if name.isdigit()), default=0) + 1


@contextlib.contextmanager
def _logs_into_capture() -> Iterator[None]:
    """Point the console log handlers at Sacred's captured stderr, so ``cout.txt`` holds the log too."""
    moved = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.__stderr__, sys.__stdout__):
            moved.append((handler, handler.setStream(sys.stderr)))
    try:
        yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)


class SacredRun:
    """What the training code sees of the Sacred run: metrics and a sync of the run folder."""

    def __init__(self, run: Any, sync: OutputSync) -> None:
        self._run = run
        self._sync = sync

    def log_scalar(self, name: str, value: float, step: int) -> None:
        self._run.log_scalar(name, float(value), step)

    def sync(self) -> None:
        self._sync.sync()


def run_with_sacred(
    body: Callable[[SacredRun], Any],
    *,
    config: dict[str, Any],
    info: dict[str, Any],
    runs_uri: str,
    local_dir: Path,
    is_preemption: Callable[[BaseException], bool],
) -> Any:
    """Run ``body`` inside a Sacred run whose folder is mirrored to ``<runs_uri>/<id>``.

    An exception for which ``is_preemption`` is true ends the run as PREEMPTED (and is re-raised); any
    other ends it as FAILED. The run folder is synced whatever the outcome.
    """
    from sacred import SETTINGS, Experiment
    from sacred.observers import FileStorageObserver
    from sacred.utils import SacredInterrupt

    class PreemptedInterrupt(SacredInterrupt):
        STATUS = "PREEMPTED"

    SETTINGS.CAPTURE_MODE = CAPTURE_MODE
    run_id = next_run_id(runs_uri)
    run_dir = local_dir / str(run_id)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    sync = OutputSync(run_dir, storage.join(runs_uri, str(run_id)))
    # Sacred keeps copies of the experiment's source files beside the runs, shared by all of them.
    sources_sync = OutputSync(local_dir / "_sources", storage.join(runs_uri, "_sources"))
    experiment = Experiment(EXPERIMENT_NAME, save_git_info=False)
    experiment.add_config(config)
    experiment.observers.append(FileStorageObserver(os.fspath(local_dir)))
    preemption: list[BaseException] = []

    def train(_run: Any) -> Any:
        with _logs_into_capture():
            try:
                return body(SacredRun(_run, sync))
            except BaseException as exc:
                if is_preemption(exc):
                    preemption.append(exc)
                    raise PreemptedInterrupt() from exc
                raise

    experiment.main(train)
    log.info("Sacred run %d: %s", run_id, storage.join(runs_uri, str(run_id)))
    try:
        run = experiment.run(options={"--id": str(run_id), "--capture": CAPTURE_MODE}, info=info)
    except PreemptedInterrupt:
        raise preemption[0] from None
    finally:
        sync.sync()
        sources_sync.sync()
    return run.result

"""launch-pytorchjob: run a training job to completion from a pipeline step (or a shell) and report how it ended.

One launcher, two job kinds (:class:`wsovvis.k8s.jobspec.JobKind`): a PyTorchJob of the Training Operator v1
(:mod:`wsovvis.k8s.pytorchjob`) or a TrainJob of Trainer v2 (:mod:`wsovvis.k8s.trainjob`), told apart by the
manifest's job document. Create-or-attach, polling, log copying, cancelling and deleting are written once here; each
kind supplies its resource (group, version, plural), which condition means it succeeded, and how to find its first
pod. The behaviour follows Google Cloud Pipeline Components' remote-job launcher:

- create-or-attach: if a job of that name already exists (a retried or restarted step), attach to it
  instead of starting a second training; a finished job is reported as it ended;
- wait until the job's success condition (a PyTorchJob's Succeeded, a TrainJob's Complete) or its Failed condition
  is True, or the timeout passes; meanwhile the first pod's log (a PyTorchJob's ``<job>-master-0``, container
  ``pytorch``; a TrainJob's node of completion index 0, container ``node``) is copied to stdout once the pod runs;
- SIGTERM (the run was terminated in the Kubeflow UI) deletes the job; Ctrl-C (SIGINT) only detaches;
- connection errors and 429/5xx answers are retried a bounded number of times with exponential backoff;
- finished jobs are deleted per ``DeletePolicy`` (default: keep failed ones for debugging).

Exit codes (``WsovvisError.exit_code``): 0 Succeeded, 1 Failed, 2 bad manifest or arguments, 4 timed out,
5 Kubernetes API unreachable or refusing (an infrastructure failure, not the training's), 143 SIGTERM.

The manifest holds one job (a ``kubeflow.org/v1`` PyTorchJob or a ``trainer.kubeflow.org/v1alpha1`` TrainJob) and
optionally the ConfigMaps it mounts; those are created after the job with the job as their owner, so deleting the job
garbage-collects them.

Why not the Kubeflow SDKs. The Training Operator's ``TrainingClient``: its ``create_job`` fails on a job that already
exists instead of attaching to it, and its wait neither deletes the job on SIGTERM nor retries a refusing or
unreachable API server; it also cannot create the ConfigMaps the job mounts. Trainer v2's ``TrainerClient`` (the
``kubeflow`` package, 0.5): ``train()`` builds the TrainJob from its own trainer types and options (its
``RuntimePatch`` option does carry node selectors, tolerations and volumes) and creates it, with no way to attach to a
job of that name; every API error becomes a bare ``RuntimeError``, so a conflict (attach), a throttled or refusing
server (retry) and a denial (exit 5) cannot be told apart, and nothing is retried; ``get_job`` also reads the
(Cluster)TrainingRuntime, which needs cluster-wide RBAC the pipeline's account should not have; its wait polls with
no SIGTERM handling (nothing deletes the job) and raises a bare ``TimeoutError``; it cannot create the ConfigMap the
job mounts. What it does well is kept: its reading of a TrainJob's
status (a True ``Complete`` or ``Failed`` condition ends the job) and its way of finding the first node's pod (the
JobSet's labels, replicated job ``node``, index 0, container ``node``) are what :class:`~wsovvis.k8s.trainjob.TrainJobKind`
does, without its pydantic models (``kubeflow-trainer-api``, pydantic) in the launcher's image. The calls here use
the ``kubernetes`` client both SDKs wrap.
"""

from __future__ import annotations

import argparse
import enum
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeVar

import yaml

from wsovvis import storage
from wsovvis.cliutil import add_flag, positive_int
from wsovvis.errors import UsageError, WsovvisError
from wsovvis.k8s import pytorchjob as pj
from wsovvis.k8s import trainjob as tj
from wsovvis.k8s.jobspec import JobKind, job_name_for_run

log = logging.getLogger(__name__)

T = TypeVar("T")

# HTTP answers worth retrying: throttling and server-side trouble (an apiserver restarting, a proxy).
_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_BACKOFF_S = 30.0
_TERMINAL = ("Succeeded", "Failed")
# The job kinds a manifest may hold, by (apiVersion, kind).
KINDS: dict[tuple[str, str], JobKind] = {(k.api_version, k.kind): k for k in (pj.PYTORCHJOB, tj.TRAINJOB)}


class JobFailedError(WsovvisError):
    """The job's Failed condition became True."""

    exit_code = 1


class JobTimeoutError(WsovvisError):
    """The job did not finish within the timeout."""

    exit_code = 4


class ClusterError(WsovvisError):
    """The Kubernetes API could not be reached or refused a request: infrastructure, not training."""

    exit_code = 5


class JobCancelledError(WsovvisError):
    """SIGTERM arrived while waiting; the job was deleted."""

    exit_code = 128 + signal.SIGTERM


class DeletePolicy(str, enum.Enum):
    """Which finished jobs the launcher deletes."""

    NEVER = "never"
    ON_SUCCESS = "on-success"
    ALWAYS = "always"


@dataclass(frozen=True)
class LaunchSettings:
    """How to run a job. ``timeout_s`` None waits forever; ``kubeconfig`` None uses the in-cluster
    service account inside a pod, else ``$KUBECONFIG`` or ``~/.kube/config``."""

    namespace: str
    timeout_s: float | None = None
    delete_policy: DeletePolicy = DeletePolicy.ON_SUCCESS
    poll_interval_s: float = 10.0
    api_attempts: int = 6
    api_backoff_s: float = 1.0
    request_timeout_s: float = 30.0
    stream_logs: bool = True
    kubeconfig: str | None = None

    def __post_init__(self) -> None:
        if not self.namespace:
            raise UsageError("namespace is empty: give the namespace the job runs in")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise UsageError(f"timeout must be > 0 seconds, got {self.timeout_s}")
        if self.api_attempts < 1:
            raise UsageError(f"api_attempts must be >= 1, got {self.api_attempts}")
        object.__setattr__(self, "delete_policy", DeletePolicy(self.delete_policy))


@dataclass(frozen=True)
class JobOutcome:
    """How a job that succeeded ended (failures raise instead)."""

    kind: str
    name: str
    namespace: str
    attached: bool
    deleted: bool
    reason: str
    message: str


class _Cancelled(BaseException):
    """Raised by the SIGTERM handler; a BaseException so no ``except Exception`` on the way swallows it."""


def launch_job(
    manifest: str | os.PathLike[str] | Sequence[dict[str, Any]],
    settings: LaunchSettings,
    *,
    run_id: str | None = None,
    log_stream: IO[str] | None = None,
) -> JobOutcome:
    """Create (or attach to) the manifest's job (a PyTorchJob or a TrainJob) and wait for it; return when it
    succeeded.

    ``manifest`` is a YAML file (path or s3:// URI) or its parsed documents. With ``run_id`` the job is
    renamed ``<its name>-<run id>`` (see ``jobspec.job_name_for_run``) and its ConfigMap with it.
    The first pod's log goes to ``log_stream`` (default stdout). Raises JobFailedError, JobTimeoutError,
    JobCancelledError (after deleting the job), ClusterError or UsageError. SIGTERM is handled only when
    called from the main thread.
    """
    docs = _load_docs(manifest)
    kind = _kind_of(docs, _describe(manifest))
    job = kind.find_job(docs, source=_describe(manifest))
    if run_id:
        docs = kind.with_job_name(docs, job_name_for_run(run_id, prefix=job["metadata"]["name"]))
        job = kind.find_job(docs)
    _set_namespace(docs, settings.namespace, _describe(manifest))
    name = job["metadata"]["name"]
    kind.check_name(name, kind.num_workers(job))
    cluster = _Cluster(settings)
    where = f"{kind.kind} {settings.namespace}/{name}"

    previous_handler = _install_sigterm_handler()
    follower: _FirstPodLogFollower | None = None
    try:
        created = _create_or_attach(cluster, kind, docs, job, settings.namespace)
        if settings.stream_logs:
            follower = _FirstPodLogFollower(
                cluster.core,
                kind,
                settings.namespace,
                name,
                settings.poll_interval_s,
                log_stream or sys.stdout,
            )
            follower.start()
        state, condition = _wait(cluster, kind, name, settings, where)
    except _Cancelled:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log.warning("SIGTERM: deleting %s", where)
        _delete_job(cluster, kind, name, settings.namespace)
        raise JobCancelledError(f"{where} was deleted because the launcher received SIGTERM") from None
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
        if follower is not None:
            follower.stop()

    reason, message = condition.get("reason", ""), condition.get("message", "")
    if state == "Timeout":
        deleted = settings.delete_policy is not DeletePolicy.NEVER and _delete_job(
            cluster, kind, name, settings.namespace
        )
        raise JobTimeoutError(
            f"{where} did not finish within {settings.timeout_s:g} s; last condition "
            f"{condition.get('type', 'none')}: {reason}: {message}"
            + ("; the job was deleted" if deleted else "; the job was left running")
        )
    delete = settings.delete_policy is DeletePolicy.ALWAYS or (
        settings.delete_policy is DeletePolicy.ON_SUCCESS and state == "Succeeded"
    )
    deleted = delete and _delete_job(cluster, kind, name, settings.namespace)
    if state == "Failed":
        hint = (
            ""
            if deleted
            else f"; inspect it with: kubectl -n {settings.namespace} describe {kind.kind.lower()} {name}"
        )
        raise JobFailedError(f"{where} Failed: {reason}: {message}{hint}")
    log.info("%s Succeeded: %s: %s%s", where, reason, message, " (deleted)" if deleted else "")
    return JobOutcome(
        kind=kind.kind,
        name=name,
        namespace=settings.namespace,
        attached=not created,
        deleted=deleted,
        reason=reason,
        message=message,
    )


def _kind_of(docs: Sequence[dict[str, Any]], source: str) -> JobKind:
    """The kind of the one job among ``docs``."""
    kinds = [KINDS[key] for key in ((d.get("apiVersion"), d.get("kind")) for d in docs) if key in KINDS]
    if len(kinds) != 1:
        known = " or ".join(f"{k.api_version} {k.kind}" for k in KINDS.values())
        raise UsageError(f"{source}: expected exactly one job ({known}), found {len(kinds)}")
    return kinds[0]


def _load_docs(manifest: str | os.PathLike[str] | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(manifest, (str, os.PathLike)):
        try:
            docs = [d for d in yaml.safe_load_all(storage.read_text(manifest)) if d]
        except yaml.YAMLError as exc:
            raise UsageError(f"{os.fspath(manifest)}: not valid YAML: {exc}") from exc
    else:
        docs = [dict(d) for d in manifest]
    allowed = {kind for _, kind in KINDS} | {"ConfigMap"}
    for doc in docs:
        if doc.get("kind") not in allowed:
            raise UsageError(
                f"{_describe(manifest)}: unsupported {doc.get('kind')!r} document; the manifest holds one "
                "PyTorchJob or TrainJob and the ConfigMaps it mounts"
            )
    return docs


def _describe(manifest: object) -> str:
    return os.fspath(manifest) if isinstance(manifest, (str, os.PathLike)) else "manifest"


def _set_namespace(docs: list[dict[str, Any]], namespace: str, source: str) -> None:
    for doc in docs:
        metadata = doc.setdefault("metadata", {})
        if metadata.get("namespace", namespace) != namespace:
            raise UsageError(
                f"{source}: {doc['kind']} {metadata.get('name')} is in namespace {metadata['namespace']!r}, "
                f"not {namespace!r}; remove metadata.namespace or pass --namespace {metadata['namespace']}"
            )
        metadata["namespace"] = namespace


def _install_sigterm_handler() -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_sigterm(signum: int, frame: object) -> None:
        raise _Cancelled()

    return signal.signal(signal.SIGTERM, on_sigterm)


class _Cluster:
    """The two API groups the launcher uses, with bounded retries around every call."""

    def __init__(self, settings: LaunchSettings):
        from kubernetes import client
        from kubernetes import config as kube_config

        configuration = client.Configuration()
        try:
            if settings.kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                kube_config.load_incluster_config(client_configuration=configuration)
            else:
                # $KUBECONFIG is read now, not when the kubernetes package was imported
                kube_config.load_kube_config(
                    config_file=settings.kubeconfig or os.environ.get("KUBECONFIG"),
                    client_configuration=configuration,
                )
        except (kube_config.ConfigException, OSError) as exc:
            raise ClusterError(
                f"no Kubernetes credentials ({exc}); run in a pod with a service account, set KUBECONFIG, "
                "or pass --kubeconfig"
            ) from exc
        configuration.retries = 0  # this class retries, with backoff and a bound the user can see
        self.host = configuration.host
        api_client = client.ApiClient(configuration)
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.settings = settings

    def call(self, what: str, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``action(*args, **kwargs)``, retried on connection errors and 429/5xx; other ApiExceptions pass."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        attempts, delay = self.settings.api_attempts, self.settings.api_backoff_s
        for attempt in range(1, attempts + 1):
            try:
                return action(*args, _request_timeout=self.settings.request_timeout_s, **kwargs)
            except ApiException as exc:
                if exc.status not in _TRANSIENT_STATUS:
                    raise
                problem = f"HTTP {exc.status} {api_message(exc)}"
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt == attempts:
                raise ClusterError(
                    f"Kubernetes API at {self.host} failed while {what}, {attempts} attempts: {problem}; "
                    "check that the cluster is reachable from here"
                )
            log.warning("%s: %s (attempt %d/%d); retrying in %.1f s", what, problem, attempt, attempts, delay)
            time.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF_S)
        raise AssertionError("unreachable")

    def job_call(
        self, what: str, kind: JobKind, name: str, namespace: str, action: str, *args: Any, **kwargs: Any
    ) -> Any:
        """``CustomObjectsApi.<action>_namespaced_custom_object`` on the job ``kind`` ``namespace``/``name``."""
        return self.call(
            f"{what} {kind.kind} {namespace}/{name}",
            getattr(self.custom, f"{action}_namespaced_custom_object"),
            kind.group,
            kind.version,
            namespace,
            kind.plural,
            *args,
            **kwargs,
        )

    def get_job(self, kind: JobKind, name: str, namespace: str) -> dict[str, Any]:
        return self.job_call("reading", kind, name, namespace, "get", name)


def api_message(exc: Exception) -> str:
    """The server's own message from an ApiException body, else its reason phrase."""
    body = getattr(exc, "body", None)
    try:
        return json.loads(body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(getattr(exc, "reason", "") or exc)


def _create_or_attach(
    cluster: _Cluster, kind: JobKind, docs: list[dict[str, Any]], job: dict[str, Any], namespace: str
) -> bool:
    """Create the job (then its ConfigMaps); True if created, False if one of that name existed."""
    from kubernetes.client.exceptions import ApiException

    name = job["metadata"]["name"]
    try:
        created_job = cluster.job_call("creating", kind, name, namespace, "create", job)
        created = True
        log.info("created %s %s/%s", kind.kind, namespace, name)
    except ApiException as exc:
        if exc.status != 409:
            raise _refused(exc, f"creating {kind.kind} {namespace}/{name}", kind) from exc
        created_job = cluster.get_job(kind, name, namespace)
        created = False
        state, _ = kind.state(created_job)
        log.info(
            "attaching to existing %s %s/%s (created %s, %s)",
            kind.kind,
            namespace,
            name,
            created_job["metadata"].get("creationTimestamp"),
            state,
        )
        if not _is_subset(job.get("spec"), created_job.get("spec")):
            log.warning(
                "the existing %s %s/%s has a different spec from this manifest; waiting for it anyway "
                "(delete it to start the new one)",
                kind.kind,
                namespace,
                name,
            )
    owner = {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "name": name,
        "uid": created_job["metadata"]["uid"],
    }
    for doc in docs:
        if doc is not job:
            _create_owned_config_map(cluster, kind, doc, owner, replace=created)
    return created


def _is_subset(ours: Any, theirs: Any) -> bool:
    """True if every value ``ours`` sets is in ``theirs`` (the API server adds defaults from the CRD schema)."""
    if isinstance(ours, dict):
        return isinstance(theirs, dict) and all(
            k in theirs and _is_subset(v, theirs[k]) for k, v in ours.items()
        )
    if isinstance(ours, list):
        return isinstance(theirs, list) and len(ours) == len(theirs) and all(map(_is_subset, ours, theirs))
    return ours == theirs


def _create_owned_config_map(
    cluster: _Cluster, kind: JobKind, doc: dict[str, Any], owner: dict[str, Any], *, replace: bool
) -> None:
    """Create the ConfigMap owned by the job; an existing one is replaced only when the job is new
    (it is then a leftover of an earlier job of the same name)."""
    from kubernetes.client.exceptions import ApiException

    body = {**doc, "metadata": {**doc["metadata"], "ownerReferences": [owner]}}
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    what = f"creating ConfigMap {namespace}/{name}"
    try:
        cluster.call(what, cluster.core.create_namespaced_config_map, namespace, body)
        log.info("created ConfigMap %s/%s", namespace, name)
    except ApiException as exc:
        if exc.status != 409:
            raise _refused(exc, what, kind) from exc
        if replace:
            cluster.call(
                f"replacing ConfigMap {namespace}/{name}",
                cluster.core.replace_namespaced_config_map,
                name,
                namespace,
                body,
            )
            log.info("replaced leftover ConfigMap %s/%s", namespace, name)


def _refused(exc: Exception, what: str, kind: JobKind) -> WsovvisError:
    status = getattr(exc, "status", None)
    message = f"the Kubernetes API refused {what}: HTTP {status} {api_message(exc)}"
    if status in (400, 422):
        return UsageError(message + "; fix the manifest")
    if status == 404:
        return ClusterError(message + f"; is {kind.controller} installed in this cluster?")
    if status in (401, 403):
        return ClusterError(
            message + f"; the service account needs RBAC for {kind.plural} and configmaps (manifests/rbac)"
        )
    return ClusterError(message)


def _wait(
    cluster: _Cluster, kind: JobKind, name: str, settings: LaunchSettings, where: str
) -> tuple[str, dict[str, Any]]:
    """Poll until a terminal condition; ("Timeout", latest condition) when the deadline passes."""
    from kubernetes.client.exceptions import ApiException

    deadline = None if settings.timeout_s is None else time.monotonic() + settings.timeout_s
    reported: set[tuple[str, str, str]] = set()
    condition: dict[str, Any] = {}
    while True:
        try:
            job = cluster.get_job(kind, name, settings.namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise JobFailedError(
                    f"{where} was deleted by someone else while the launcher waited"
                ) from exc
            raise _refused(exc, f"reading {where}", kind) from exc
        state, condition = kind.state(job)
        for c in (job.get("status") or {}).get("conditions") or []:
            key = (c.get("type", ""), c.get("status", ""), c.get("reason", ""))
            if key not in reported and c.get("status") == "True":
                reported.add(key)
                log.info("%s: %s (%s) %s", where, key[0], key[2], c.get("message", ""))
        if state in _TERMINAL:
            return state, condition
        if deadline is not None and time.monotonic() >= deadline:
            return "Timeout", condition
        pause = settings.poll_interval_s
        if deadline is not None:
            pause = max(0.0, min(pause, deadline - time.monotonic()))
        time.sleep(pause)


def _delete_job(cluster: _Cluster, kind: JobKind, name: str, namespace: str) -> bool:
    """Delete the job (its pods and ConfigMaps follow by owner reference); True if it is gone."""
    from kubernetes.client.exceptions import ApiException

    where = f"{kind.kind} {namespace}/{name}"
    try:
        cluster.job_call("deleting", kind, name, namespace, "delete", name, propagation_policy="Background")
    except ApiException as exc:
        if exc.status != 404:
            log.error("could not delete %s: HTTP %s %s", where, exc.status, api_message(exc))
            return False
    except ClusterError as exc:
        log.error("could not delete %s: %s", where, exc)
        return False
    log.info("deleted %s", where)
    return True


class _FirstPodLogFollower(threading.Thread):
    """Copies the job's first pod's harness container log to a stream, once per container start.

    Pods appear only after the operator reconciles the job, and the log only once the container runs; both
    are polled for. A restarted container (restartPolicy OnFailure) or a re-created pod (a new uid: the
    PyTorchJob's keeps its name, a TrainJob's Job starts a new one) is followed again.
    """

    def __init__(self, core: Any, kind: JobKind, namespace: str, job: str, interval_s: float, out: IO[str]):
        super().__init__(name=f"log-{job}", daemon=True)
        self.core, self.kind, self.namespace, self.job = core, kind, namespace, job
        self.interval_s, self.out = interval_s, out
        self._stop_event = threading.Event()
        self._response: Any = None
        self._warned = False

    def stop(self) -> None:
        self._stop_event.set()
        response = self._response
        if response is not None:
            response.close()
        self.join(timeout=5)

    def run(self) -> None:
        followed: tuple[str, int] | None = None
        while not self._stop_event.is_set():
            started = self._started_container()
            if started is not None and started[:2] != followed and self._follow(started[2]):
                followed = started[:2]
            self._stop_event.wait(self.interval_s)

    def _started_container(self) -> tuple[str, int, str] | None:
        """(pod uid, restart count, pod name) once the first pod's container has started (running or finished),
        else None."""
        try:
            pod = self.kind.first_pod(self.core, self.namespace, self.job)
        except Exception as exc:  # no connection: the main loop reports connectivity
            log.debug("looking for the first pod of %s %s: %s", self.kind.kind, self.job, exc)
            return None
        if pod is None or (pod.status.phase or "Pending") == "Pending":
            return None
        restarts = next(
            (
                s.restart_count or 0
                for s in pod.status.container_statuses or []
                if s.name == self.kind.container
            ),
            0,
        )
        return pod.metadata.uid, restarts, pod.metadata.name

    def _follow(self, pod: str) -> bool:
        """Stream the pod's log until the container ends; False if it could not be read (retried later)."""
        try:
            self._response = self.core.read_namespaced_pod_log(
                pod, self.namespace, container=self.kind.container, follow=True, _preload_content=False
            )
            for chunk in self._response.stream(decode_content=True):
                self.out.write(chunk.decode("utf-8", errors="replace"))
                self.out.flush()
            return True
        except Exception as exc:  # any failure to read logs must not end the wait for the job
            if self._stop_event.is_set():
                return True
            level = logging.DEBUG if self._warned else logging.WARNING
            log.log(level, "cannot read the log of pod %s yet: %s", pod, api_message(exc))
            self._warned = True
            return False
        finally:
            self._response = None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "launch-pytorchjob",
        help="create (or attach to) a PyTorchJob or a TrainJob and wait until it finishes",
        description=(
            "Create the PyTorchJob or TrainJob in MANIFEST (or attach to an existing job of that name), copy its "
            "first pod's log, and wait until it succeeds or fails. Exit codes: 0 succeeded, 1 failed, 2 bad "
            "manifest or arguments, 4 timeout, 5 Kubernetes API unreachable or refusing, 143 SIGTERM (the job is "
            "deleted)."
        ),
    )
    add_flag(
        parser,
        "--manifest",
        required=True,
        help="YAML with one PyTorchJob or TrainJob and its ConfigMaps (path or s3://)",
    )
    add_flag(parser, "--namespace", required=True, help="namespace to run the job in")
    add_flag(parser, "--timeout", type=float, help="seconds to wait before giving up (default: no limit)")
    add_flag(
        parser,
        "--delete_policy",
        choices=[p.value for p in DeletePolicy],
        default=DeletePolicy.ON_SUCCESS.value,
        help="which finished jobs to delete (default on-success: failed jobs are kept for debugging)",
    )
    add_flag(parser, "--run_id", help="pipeline run id; the job is named <manifest's job name>-<run id>")
    add_flag(parser, "--poll_interval", type=float, default=10.0, help="seconds between status checks")
    add_flag(parser, "--api_attempts", type=positive_int, default=6, help="attempts per Kubernetes API call")
    add_flag(
        parser, "--kubeconfig", help="kubeconfig file (default: in-cluster, $KUBECONFIG or ~/.kube/config)"
    )
    add_flag(parser, "--no_logs", action="store_true", help="do not copy the first pod's log")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = LaunchSettings(
        namespace=args.namespace,
        timeout_s=args.timeout,
        delete_policy=DeletePolicy(args.delete_policy),
        poll_interval_s=args.poll_interval,
        api_attempts=args.api_attempts,
        kubeconfig=args.kubeconfig,
        stream_logs=not args.no_logs,
    )
    outcome = launch_job(args.manifest, settings, run_id=args.run_id)
    log.info(
        "%s %s/%s Succeeded%s%s",
        outcome.kind,
        outcome.namespace,
        outcome.name,
        " (attached)" if outcome.attached else "",
        " and was deleted" if outcome.deleted else "",
    )
    return 0

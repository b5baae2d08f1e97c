"""Distributed set-up: where this process sits in a training job, and the one ``launch`` of every trainer.

Both Kubeflow controllers start one pod per machine and set the torchrun-style ``PET_NNODES``, ``PET_NODE_RANK``,
``PET_NPROC_PER_NODE``. The Training Operator's PyTorchJob gives the rendezvous as ``MASTER_ADDR``/``MASTER_PORT``;
Trainer v2's TrainJob (its torch plugin) sets only the ``PET_*`` set, the rendezvous as ``PET_MASTER_ADDR``/
``PET_MASTER_PORT`` (and refuses ``MASTER_ADDR``/``RANK`` set by hand). Each process is placed from either: the
``PET_*`` set alone is enough. The harness does not use torchrun:
like detectron2's ``launch``, it spawns one process per local device itself, with
``global rank = machine_rank * procs_per_machine + local_rank``. Every process of the master pod sees
``RANK=0``, so only the computed global rank says which process is the main one.

Without those variables the same code runs on one machine (``dist_url`` "auto": a free loopback port).

One launch path: the harness always calls :func:`launch`, for SeqFormer and for any other trainer. On GPUs it hands
over to detectron2's ``launch`` (NCCL), which also sets up the per-machine group detectron2's trainer reads. On CPU,
where detectron2's ``launch`` refuses to run (it asserts CUDA), :func:`launch` spawns the gloo workers itself with
the same ranks and groups, so multi-process runs work without detectron2 (the test suite's toy trainer: the
harness's launch, staging, preemption and resume are tested on CPU).
"""

from __future__ import annotations

import datetime
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wsovvis.errors import RuntimeMissingError, UsageError, WsovvisError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)
FAILED_WORKER_EXIT_SECONDS = 10.0
FAILED_WORKER_GRACE_SECONDS = 30.0

# The per-machine process group our CPU launch creates (detectron2's launch keeps its own in detectron2.utils.comm).
_local_group: Any = None


class WorkerFailedError(WsovvisError):
    """A spawned training process exited with an error."""


@dataclass(frozen=True)
class DistPlan:
    """How many processes run where, and how they find each other."""

    num_machines: int
    machine_rank: int
    procs_per_machine: int
    dist_url: str
    device: str

    @property
    def world_size(self) -> int:
        return self.num_machines * self.procs_per_machine

    @property
    def backend(self) -> str:
        return "nccl" if self.device == "cuda" else "gloo"

    def global_rank(self, local_rank: int) -> int:
        return self.machine_rank * self.procs_per_machine + local_rank

    def local_rank(self, global_rank: int) -> int:
        return global_rank - self.machine_rank * self.procs_per_machine


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _env_nnodes(env: Mapping[str, str]) -> int | None:
    text = env.get("PET_NNODES", "").strip()
    if not text:
        return None
    low, _, high = text.partition(":")
    if high and high != low:
        raise UsageError(
            f"PET_NNODES={text!r} is an elastic range; the harness needs a fixed number of machines (set "
            "minReplicas = maxReplicas, or num_machines in the config)"
        )
    try:
        return int(low)
    except ValueError as exc:
        raise UsageError(f"PET_NNODES={text!r} is not a number of machines") from exc


def plan_distributed(
    *,
    device: str = "auto",
    num_gpus: int | None = None,
    num_machines: int | None = None,
    machine_rank: int | None = None,
    dist_url: str | None = None,
    env: Mapping[str, str] | None = None,
    cuda_count: int = 0,
) -> DistPlan:
    """Settings given explicitly win; then the job's environment (a PyTorchJob's or a TrainJob's); then one
    machine, one process per GPU."""
    env = os.environ if env is None else env
    if device == "auto":
        device = "cuda" if cuda_count > 0 else "cpu"
    if device == "cuda" and cuda_count == 0:
        raise UsageError("device is 'cuda' but torch sees no GPU; set device=cpu or run on a GPU node")
    # PET_NPROC_PER_NODE may also be torchrun's "auto"/"gpu"/"cpu": then count the devices.
    procs = num_gpus or _env_int(env, "PET_NPROC_PER_NODE") or (cuda_count if device == "cuda" else 1)
    if device == "cuda" and procs > cuda_count:
        raise UsageError(f"{procs} processes per machine asked for, but this machine has {cuda_count} GPU(s)")
    machines = num_machines or _env_nnodes(env) or 1
    rank = machine_rank
    if rank is None:
        rank = _env_int(env, "PET_NODE_RANK")
    if rank is None:
        rank = 0
    if not 0 <= rank < machines:
        raise UsageError(f"machine rank {rank} is outside 0..{machines - 1} (PET_NODE_RANK / machine_rank)")
    url = dist_url
    if not url:
        addr, port = _rendezvous(env)
        if addr and port:
            url = f"tcp://{addr}:{port}"
        elif machines > 1:
            raise UsageError(
                f"{machines} machines need MASTER_ADDR and MASTER_PORT (set by a PyTorchJob), PET_MASTER_ADDR and "
                "PET_MASTER_PORT (set by a TrainJob) or dist_url"
            )
        else:
            url = "auto"
    return DistPlan(
        num_machines=machines, machine_rank=rank, procs_per_machine=procs, dist_url=url, device=device
    )


def _rendezvous(env: Mapping[str, str]) -> tuple[str, str]:
    """The first machine's address and port: a PyTorchJob's ``MASTER_*``, else a TrainJob's ``PET_MASTER_*``."""
    for prefix in ("", "PET_"):
        addr, port = env.get(f"{prefix}MASTER_ADDR", "").strip(), env.get(f"{prefix}MASTER_PORT", "").strip()
        if addr and port:
            return addr, port
    return "", ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(
    plan: DistPlan,
    main_func: Callable[..., Any],
    args: tuple[Any, ...] = (),
    timeout: datetime.timedelta = DEFAULT_TIMEOUT,
) -> None:
    """Run ``main_func(*args)`` in each of this machine's ``plan.procs_per_machine`` processes: every trainer's launch.

    With a world size of 1 it runs in this process. Otherwise one process per local device: on CUDA through
    detectron2's ``launch`` (NCCL), on CPU spawned here on gloo with the same ranks and groups. A failing worker
    ends the launch and :class:`WorkerFailedError` names it.
    """
    if plan.world_size == 1:
        main_func(*args)
        return
    dist_url = plan.dist_url
    if dist_url == "auto":
        if plan.num_machines != 1:
            raise UsageError("dist_url 'auto' only works on one machine")
        dist_url = f"tcp://127.0.0.1:{_free_port()}"
    if plan.device != "cuda":
        context = multiprocessing.get_context("spawn")
        processes = []
        for local_rank in range(plan.procs_per_machine):
            process = context.Process(
                target=_distributed_worker,
                args=(local_rank, plan, dist_url, main_func, args, timeout),
                name=f"wsovvis-train-{local_rank}",
                daemon=False,
            )
            process.start()
            processes.append(process)
        _wait(processes)
        return
    from torch.multiprocessing.spawn import ProcessException

    detectron2_launch = _detectron2_launch()
    try:
        detectron2_launch(
            main_func,
            plan.procs_per_machine,
            num_machines=plan.num_machines,
            machine_rank=plan.machine_rank,
            dist_url=dist_url,
            args=args,
            timeout=timeout,
        )
    except ProcessException as exc:
        raise WorkerFailedError(
            f"training process(es) failed: wsovvis-train-{exc.error_index} ({exc}); see the log above"
        ) from exc


def _wait(processes: list[multiprocessing.process.BaseProcess]) -> None:
    """Wait for every worker; after the first failure, give the rest a moment to fail on their own (their
    collectives break), then SIGTERM them, then SIGKILL.

    Unlike ``torch.multiprocessing.spawn``, which reports the first process it sees exit (after a crash, often a
    peer whose collective broke) and stops the rest at once, this names every failed worker.
    """
    running = {p.sentinel: p for p in processes}
    failed: list[str] = []
    deadlines: list[tuple[float, Callable[[multiprocessing.process.BaseProcess], None]]] = []
    while running:
        timeout = max(0.0, deadlines[0][0] - time.monotonic()) if deadlines else None
        for sentinel in multiprocessing.connection.wait(list(running), timeout=timeout):
            process = running.pop(sentinel)
            process.join()
            if process.exitcode != 0:
                failed.append(f"{process.name} (exit code {process.exitcode})")
                if not deadlines and running:
                    now = time.monotonic()
                    deadlines = [
                        (now + FAILED_WORKER_EXIT_SECONDS, lambda p: p.terminate()),
                        (now + FAILED_WORKER_EXIT_SECONDS + FAILED_WORKER_GRACE_SECONDS, lambda p: p.kill()),
                    ]
        while deadlines and time.monotonic() >= deadlines[0][0]:
            _, action = deadlines.pop(0)
            for other in running.values():
                action(other)
    if failed:
        raise WorkerFailedError(f"training process(es) failed: {', '.join(failed)}; see the log above")


def _detectron2_launch() -> Callable[..., Any]:
    try:
        from detectron2.engine import launch as detectron2_launch
    except ImportError as exc:
        raise RuntimeMissingError(
            "training on more than one GPU launches through detectron2's launch (NCCL): install detectron2 "
            "(the GPU runtime image has VNext's)"
        ) from exc
    return detectron2_launch


def _distributed_worker(
    local_rank: int,
    plan: DistPlan,
    dist_url: str,
    main_func: Callable[..., Any],
    args: tuple[Any, ...],
    timeout: datetime.timedelta,
) -> None:
    import torch.distributed as dist

    global _local_group
    try:
        dist.init_process_group(
            backend=plan.backend,
            init_method=dist_url,
            world_size=plan.world_size,
            rank=plan.global_rank(local_rank),
            timeout=timeout,
        )
        for machine in range(plan.num_machines):
            ranks = list(range(machine * plan.procs_per_machine, (machine + 1) * plan.procs_per_machine))
            group = dist.new_group(ranks)
            if machine == plan.machine_rank:
                _local_group = group
        barrier()
        main_func(*args)
    except BaseException:
        traceback.print_exc()
        raise SystemExit(1) from None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


# --------------------------------------------------------------------------------------------------- helpers


def is_initialized() -> bool:
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    if not is_initialized():
        return 0
    import torch.distributed as dist

    return dist.get_rank()


def get_world_size() -> int:
    if not is_initialized():
        return 1
    import torch.distributed as dist

    return dist.get_world_size()


def local_group() -> Any:
    """The per-machine process group created by :func:`launch` (None otherwise)."""
    return _local_group


def barrier() -> None:
    if get_world_size() == 1:
        return
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def any_rank(flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any rank (a collective: every rank must call it)."""
    if get_world_size() == 1:
        return flag
    import torch
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` as a list on global rank 0 (None elsewhere); a collective."""
    if get_world_size() == 1:
        return [obj]
    import torch.distributed as dist

    # Pickled objects travel over gloo even when training uses NCCL.
    group = dist.new_group(backend="gloo") if dist.get_backend() == "nccl" else dist.group.WORLD
    received: list[Any] = [None] * get_world_size() if get_rank() == 0 else []
    dist.gather_object(obj, received if get_rank() == 0 else None, dst=0, group=group)
    return received if get_rank() == 0 else None


# --------------------------------------------------------------------------------------------------- signals


class StopRequest:
    """Set by SIGTERM (a preempted or deleted pod): training stops at the next step boundary."""

    def __init__(self) -> None:
        self.requested = False
        self.forward_to: list[multiprocessing.process.BaseProcess] | None = None

    def install(self, *, forward_to_children: bool = False) -> None:
        """Handle SIGTERM in this process; with ``forward_to_children``, pass it on to spawned workers.

        Only the launching parent forwards (its only children are the workers); a worker never does, since
        its children are data-loader processes that must keep running until the checkpoint is written.
        """
        self._forward = forward_to_children
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.requested:
            log.warning("SIGTERM received: stopping at the next step and writing a checkpoint")
        self.requested = True
        if self._forward:
            for child in multiprocessing.active_children():
                if child.pid is not None:
                    os.kill(child.pid, signal.SIGTERM)


stop_request = StopRequest()

"""Multi-process initialisation: the one call every entry point makes before touching JAX.

`initialize()` decides, in this order, how this process joins the run:

1. explicit arguments (`coordinator_address`, `num_processes`, `process_id`);
2. the environment variables `launch.local` sets (`VJ_COORDINATOR_ADDRESS`,
   `VJ_NUM_PROCESSES`, `VJ_PROCESS_ID`);
3. a cluster JAX can describe by itself (a Cloud TPU VM or pod slice, or a multi-task
   Slurm / Open MPI job): `jax.distributed.initialize()` with no arguments;
4. otherwise a single process: nothing to connect, so nothing happens.

`VJ_DEVICES_PER_PROCESS` sets how many CPU devices each process simulates. Both it and
the distributed runtime must be in place before JAX creates its backends, which is why
this must run before the first JAX computation (or `jax.devices()`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Literal

import jax

ENV_COORDINATOR_ADDRESS = "VJ_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "VJ_NUM_PROCESSES"
ENV_PROCESS_ID = "VJ_PROCESS_ID"
ENV_DEVICES_PER_PROCESS = "VJ_DEVICES_PER_PROCESS"

# Set on Cloud TPU VMs / GKE TPU pods; their presence means JAX can find its peers itself.
_TPU_ENV_MARKERS = (
    "TPU_WORKER_HOSTNAMES",
    "TPU_PROCESS_ADDRESSES",
    "TPU_WORKER_ID",
    "CLOUD_TPU_TASK_ID",
    "MEGASCALE_COORDINATOR_ADDRESS",
)

Mode = Literal["single", "explicit", "cluster"]


@dataclasses.dataclass(frozen=True)
class ProcessSettings:
    """How this process takes part in a run, resolved from arguments and environment."""

    mode: Mode
    coordinator_address: str | None = None
    num_processes: int | None = None  # None in "cluster" mode: JAX discovers it
    process_id: int | None = None
    cpu_devices_per_process: int | None = None
    cluster: str | None = None  # what was detected, for messages


_active: ProcessSettings | None = None


def _int_from_env(environ: Mapping[str, str], name: str, minimum: int) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer; set it to a whole number") from None
    if value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}")
    return value


def _running_on_cloud_tpu_vm() -> bool:
    # JAX sets this flag at import time when libtpu is installed and TPU chips sit on the PCI
    # bus; that covers TPU VMs where the worker list only lives in the metadata server.
    try:
        from jax._src import cloud_tpu_init
    except ImportError:  # private module moved: fall back to the environment markers
        return False
    return bool(getattr(cloud_tpu_init, "running_in_cloud_tpu_vm", False))


def detect_cluster(environ: Mapping[str, str], on_tpu_vm: bool = False) -> str | None:
    """Names the multi-process environment `jax.distributed.initialize()` can auto-detect."""
    if on_tpu_vm or any(environ.get(name) for name in _TPU_ENV_MARKERS):
        return "Cloud TPU"
    # Slurm and Open MPI also run single-task jobs; only several tasks need a coordinator.
    if "SLURM_JOB_ID" in environ and _task_count(environ, "SLURM_NTASKS") > 1:
        return "Slurm"
    if _task_count(environ, "OMPI_COMM_WORLD_SIZE") > 1:
        return "Open MPI"
    return None


def _task_count(environ: Mapping[str, str], name: str) -> int:
    # Tolerant on purpose: these belong to the scheduler, not to us, so oddities mean "one".
    raw = environ.get(name, "")
    return int(raw) if raw.isdigit() else 1


def _check_coordinator(address: str) -> str:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"coordinator_address={address!r} must look like 'host:port' "
            "(for example '127.0.0.1:12355' or '10.0.0.2:8476')"
        )
    return address


def resolve_settings(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    environ: Mapping[str, str] | None = None,
    on_tpu_vm: bool | None = None,
) -> ProcessSettings:
    """Pure resolution of `initialize`'s arguments against the environment (no side effects)."""
    environ = os.environ if environ is None else environ
    devices = _int_from_env(environ, ENV_DEVICES_PER_PROCESS, 1)

    # Each field independently: an explicit argument beats its environment variable.
    if coordinator_address is None:
        coordinator_address = environ.get(ENV_COORDINATOR_ADDRESS, "").strip() or None
    if num_processes is None:
        num_processes = _int_from_env(environ, ENV_NUM_PROCESSES, 1)
    if process_id is None:
        process_id = _int_from_env(environ, ENV_PROCESS_ID, 0)

    if num_processes is None:
        if coordinator_address is not None or process_id is not None:
            raise ValueError(
                "num_processes is missing: a coordinator address or process id was given "
                f"without a process count; pass num_processes=N or set {ENV_NUM_PROCESSES}"
            )
        tpu_vm = _running_on_cloud_tpu_vm() if on_tpu_vm is None else on_tpu_vm
        cluster = detect_cluster(environ, tpu_vm)
        if cluster is not None:
            return ProcessSettings("cluster", cpu_devices_per_process=devices, cluster=cluster)
        return ProcessSettings("single", num_processes=1, process_id=0,
                               cpu_devices_per_process=devices)

    if not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"num_processes={num_processes!r} must be an integer >= 1")
    if process_id is None:
        if num_processes > 1:
            raise ValueError(
                f"process_id is missing for a {num_processes}-process run; pass "
                f"process_id=0..{num_processes - 1} or set {ENV_PROCESS_ID}"
            )
        process_id = 0
    if not isinstance(process_id, int) or not 0 <= process_id < num_processes:
        raise ValueError(
            f"process_id={process_id!r} is out of range for num_processes={num_processes}; "
            f"it must be in 0..{num_processes - 1}"
        )
    if num_processes == 1:
        return ProcessSettings("single", coordinator_address, 1, 0, devices)
    if coordinator_address is None:
        raise ValueError(
            f"coordinator_address is missing for a {num_processes}-process run; pass "
            f"coordinator_address='host:port' (process 0's address) or set "
            f"{ENV_COORDINATOR_ADDRESS}"
        )
    return ProcessSettings(
        "explicit", _check_coordinator(coordinator_address), num_processes, process_id, devices
    )


def _set_cpu_device_count(count: int) -> None:
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:
        # The backend exists already; that is fine only if it has the requested count.
        actual = len(jax.local_devices(backend="cpu"))
        if actual != count:
            raise RuntimeError(
                f"{ENV_DEVICES_PER_PROCESS}={count} cannot take effect: JAX already created its "
                f"CPU backend with {actual} device(s). Call "
                "vision_jax.parallel.distributed.initialize() before any JAX computation"
            ) from None


def _use_gloo_for_cpu_collectives() -> None:
    # Cross-process collectives on CPU need an implementation; gloo (TCP) works everywhere.
    # jax 0.10 already defaults to it (older releases had none, and multi-process CPU runs
    # failed); the flag only concerns the CPU backend, so it is harmless on TPU and GPU.
    if jax.config.jax_cpu_collectives_implementation not in ("gloo", "mpi"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")


def _start_distributed_runtime(settings: ProcessSettings) -> None:
    try:
        if settings.mode == "explicit":
            jax.distributed.initialize(
                coordinator_address=settings.coordinator_address,
                num_processes=settings.num_processes,
                process_id=settings.process_id,
                # Everything is known: skip probing the metadata server / Slurm environment.
                cluster_detection_method="deactivate",
            )
        else:
            jax.distributed.initialize()
    except RuntimeError as error:
        if "must be called before" in str(error):
            raise RuntimeError(
                "initialize() must run before any JAX computation (something already called "
                "jax.devices(), created an array or jitted a function); move the call to the "
                f"top of main(). JAX said: {error}"
            ) from error
        raise


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Joins this process to the run (see the module docstring for how); idempotent.

    A repeated call is a no-op; one whose explicit arguments contradict the first call's
    raises, since a process cannot move to another cluster.
    """
    global _active
    if _active is not None:
        requested = {
            "coordinator_address": coordinator_address,
            "num_processes": num_processes,
            "process_id": process_id,
        }
        for name, value in requested.items():
            current = getattr(_active, name)
            if value is not None and current is not None and value != current:
                raise ValueError(
                    f"initialize({name}={value!r}) conflicts with the earlier call "
                    f"({name}={current!r}); a process joins one run only"
                )
        return

    settings = resolve_settings(coordinator_address, num_processes, process_id)
    if settings.cpu_devices_per_process is not None:
        _set_cpu_device_count(settings.cpu_devices_per_process)
    if settings.mode != "single" and not jax.distributed.is_initialized():
        _use_gloo_for_cpu_collectives()
        _start_distributed_runtime(settings)
    _active = settings


def is_main_process() -> bool:
    """True on process 0: the one that writes logs, plots and reports."""
    return jax.process_index() == 0

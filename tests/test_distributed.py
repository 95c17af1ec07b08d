"""vision_jax.parallel.distributed: how a process decides to join a run, and its errors.

Resolution is a pure function, tested directly. Anything that touches JAX's backend runs in
a fresh subprocess, because the CPU device count is fixed once JAX creates its backend.
"""

import os
import re
import subprocess
import sys
import textwrap

import pytest

from launch.local import flags_without_device_count
from vision_jax.parallel.distributed import ProcessSettings, detect_cluster, resolve_settings

LAUNCH_ENV = {
    "VJ_COORDINATOR_ADDRESS": "127.0.0.1:5555",
    "VJ_NUM_PROCESSES": "4",
    "VJ_PROCESS_ID": "3",
}


def resolve(*args, environ=None, on_tpu_vm=False, **kwargs) -> ProcessSettings:
    return resolve_settings(*args, environ={} if environ is None else environ,
                            on_tpu_vm=on_tpu_vm, **kwargs)


def test_nothing_set_is_a_single_process():
    settings = resolve()
    assert settings.mode == "single"
    assert (settings.num_processes, settings.process_id) == (1, 0)
    assert settings.cpu_devices_per_process is None


def test_environment_from_launch_local_is_used():
    settings = resolve(environ={**LAUNCH_ENV, "VJ_DEVICES_PER_PROCESS": "2"})
    assert settings == ProcessSettings("explicit", "127.0.0.1:5555", 4, 3, 2)


def test_explicit_arguments_win_over_the_environment_field_by_field():
    settings = resolve("10.0.0.1:1234", 2, environ=LAUNCH_ENV | {"VJ_PROCESS_ID": "1"})
    assert (settings.coordinator_address, settings.num_processes) == ("10.0.0.1:1234", 2)
    assert settings.process_id == 1  # not given explicitly: taken from the environment


def test_one_process_needs_no_coordinator():
    settings = resolve(num_processes=1)
    assert settings.mode == "single" and settings.process_id == 0


@pytest.mark.parametrize(
    ("kwargs", "environ", "message"),
    [
        ({"coordinator_address": "h:1", "num_processes": 2, "process_id": 2}, {},
         "process_id=2 is out of range for num_processes=2"),
        ({"num_processes": 3, "process_id": 0}, {}, "coordinator_address is missing"),
        ({"coordinator_address": "h:1", "num_processes": 2}, {}, "process_id is missing"),
        ({"coordinator_address": "h:1", "process_id": 0}, {}, "num_processes is missing"),
        ({}, {"VJ_NUM_PROCESSES": "two"}, "VJ_NUM_PROCESSES='two' is not an integer"),
        ({}, {"VJ_NUM_PROCESSES": "0"}, "VJ_NUM_PROCESSES=0 must be >= 1"),
        ({}, {"VJ_DEVICES_PER_PROCESS": "0"}, "VJ_DEVICES_PER_PROCESS=0 must be >= 1"),
        ({"coordinator_address": "no-port", "num_processes": 2, "process_id": 0}, {},
         "must look like 'host:port'"),
        ({"num_processes": 0}, {}, "num_processes=0 must be an integer >= 1"),
    ],
)
def test_inconsistent_settings_fail_with_a_message_naming_the_field(kwargs, environ, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        resolve(environ=environ, **kwargs)


@pytest.mark.parametrize(
    ("environ", "on_tpu_vm", "expected"),
    [
        ({}, False, None),
        ({}, True, "Cloud TPU"),
        ({"TPU_WORKER_HOSTNAMES": "t1,t2,t3,t4"}, False, "Cloud TPU"),
        ({"CLOUD_TPU_TASK_ID": "0"}, False, "Cloud TPU"),
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}, False, "Slurm"),
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}, False, None),
        ({"OMPI_COMM_WORLD_SIZE": "2"}, False, "Open MPI"),
    ],
)
def test_cluster_detection(environ, on_tpu_vm, expected):
    assert detect_cluster(environ, on_tpu_vm) == expected


def test_a_detected_cluster_defers_to_jax_auto_detection():
    settings = resolve(environ={"TPU_WORKER_HOSTNAMES": "t1,t2"})
    assert settings.mode == "cluster" and settings.num_processes is None


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("VJ_")}
    child_env.update(env, JAX_PLATFORMS="cpu")
    child_env["XLA_FLAGS"] = " ".join(flags_without_device_count(child_env))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=child_env,
                          capture_output=True, text=True, timeout=120)


def test_single_process_sets_the_device_count_and_is_idempotent():
    result = run_python(
        """
        from vision_jax.parallel import distributed
        distributed.initialize()
        distributed.initialize()  # a second call is a no-op
        import jax
        assert jax.process_count() == 1, jax.process_count()
        assert jax.device_count() == 3, jax.devices()
        assert distributed.is_main_process()
        try:
            distributed.initialize(num_processes=2)
        except ValueError as error:
            print("CONFLICT:", error)
        """,
        VJ_DEVICES_PER_PROCESS="3",
    )
    assert result.returncode == 0, result.stderr
    assert "CONFLICT: initialize(num_processes=2) conflicts with the earlier call" in result.stdout


def test_initialising_after_jax_started_explains_the_fix():
    result = run_python(
        """
        import os
        import jax
        from vision_jax.parallel import distributed
        jax.devices()  # starts the backend with 1 CPU device
        for call in (lambda: distributed.initialize(),
                     lambda: distributed.initialize("127.0.0.1:9", 2, 0)):
            try:
                call()
            except RuntimeError as error:
                print("ERROR:", error)
            os.environ.pop("VJ_DEVICES_PER_PROCESS", None)
        """,
        VJ_DEVICES_PER_PROCESS="3",
    )
    assert result.returncode == 0, result.stderr
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 2, result.stdout
    assert "VJ_DEVICES_PER_PROCESS=3 cannot take effect" in errors[0]
    assert "before any JAX computation" in errors[0]
    assert "must run before any JAX computation" in errors[1]

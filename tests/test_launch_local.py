"""launch.local: N real processes on this machine, a real cross-process JAX collective, and
the clean-up when one of them fails or the user presses Ctrl-C."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from launch import local

REPO_ROOT = Path(__file__).resolve().parents[1]

# Each process contributes `PER_DEVICE` numbers per local device; the global array is
# the concatenation, and only a cross-process reduction can see all of it.
GLOBAL_SUM_PROBE = """
    from vision_jax.parallel import distributed

    distributed.initialize()  # before anything starts JAX's backend

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    assert jax.process_count() == 2, jax.process_count()
    assert jax.device_count() == 8, jax.device_count()
    assert jax.local_device_count() == 4, jax.local_device_count()

    PER_DEVICE = 3
    mesh = Mesh(np.array(jax.devices()), ("data",))
    local_size = jax.local_device_count() * PER_DEVICE
    local = np.arange(local_size, dtype=np.float32) + jax.process_index() * local_size
    global_array = jax.make_array_from_process_local_data(
        NamedSharding(mesh, PartitionSpec("data")), local, (jax.device_count() * PER_DEVICE,)
    )
    total = jax.jit(jnp.sum)(global_array)
    print(f"GLOBAL_SUM {float(total)} main={distributed.is_main_process()}")
"""


def write_script(tmp_path: Path, name: str, code: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return str(path)


def launch_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launch.local", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_two_processes_of_four_devices_reduce_a_global_array(tmp_path):
    script = write_script(tmp_path, "probe.py", GLOBAL_SUM_PROBE)
    result = launch_cli("--processes", "2", "--devices-per-process", "4", "--",
                        sys.executable, script)
    assert result.returncode == 0, result.stdout + result.stderr

    expected = float(np.arange(2 * 4 * 3, dtype=np.float64).sum())  # 0 + 1 + ... + 23
    lines = result.stdout.splitlines()
    assert f"[p0] GLOBAL_SUM {expected} main=True" in lines, result.stdout
    assert f"[p1] GLOBAL_SUM {expected} main=False" in lines, result.stdout


def test_a_failing_process_stops_the_others_quickly(tmp_path):
    script = write_script(tmp_path, "fail.py", """
        import os, sys, time
        if os.environ["VJ_PROCESS_ID"] == "1":
            sys.exit(3)
        print("sleeping", flush=True)
        time.sleep(120)
        print("should have been terminated", flush=True)
    """)
    start = time.monotonic()
    result = launch_cli("--processes", "2", "--", sys.executable, script)
    elapsed = time.monotonic() - start

    assert result.returncode == 3
    assert elapsed < 30, f"took {elapsed:.1f}s: the sleeping process was not stopped"
    assert "process 1 exited with code 3" in result.stderr
    assert "FAILED: process 1 of 2 exited with code 3" in result.stderr
    assert "should have been terminated" not in result.stdout


def test_death_by_signal_is_reported_and_a_stubborn_sibling_gets_sigkill(tmp_path, capsys):
    script = write_script(tmp_path, "stubborn.py", """
        import os, signal, time
        if os.environ["VJ_PROCESS_ID"] == "0":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends it
            print("ready", flush=True)
            time.sleep(120)
        else:
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    start = time.monotonic()
    code = local.run([sys.executable, script], processes=2, grace_period_s=0.5)
    elapsed = time.monotonic() - start

    assert code == 128 + signal.SIGKILL
    assert elapsed < 30
    err = capsys.readouterr().err
    assert "process 1 was killed by SIGKILL" in err


def test_children_get_the_environment_and_output_is_prefixed(tmp_path, capsys):
    script = write_script(tmp_path, "env.py", """
        import os, sys
        keys = ["VJ_PROCESS_ID", "VJ_NUM_PROCESSES", "VJ_DEVICES_PER_PROCESS", "JAX_PLATFORMS"]
        print(*(os.environ[k] for k in keys), os.environ["VJ_COORDINATOR_ADDRESS"])
        print("flags", os.environ["XLA_FLAGS"], file=sys.stderr)
    """)
    code = local.run([sys.executable, script], processes=3, devices_per_process=2, port=23456)
    assert code == 0
    out, err = capsys.readouterr()
    for pid in range(3):
        assert f"[p{pid}] {pid} 3 2 cpu 127.0.0.1:23456" in out.splitlines()
        flags = [line.split()[2:] for line in err.splitlines()
                 if line.startswith(f"[p{pid}] flags ")]
        assert len(flags) == 1 and flags[0][-1] == "--xla_force_host_platform_device_count=2"


def test_child_environment_replaces_a_device_count_flag_and_keeps_others():
    env = local.child_environment(
        {"XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_force_host_platform_device_count=8"},
        process_id=1, processes=2, devices_per_process=4, coordinator_address="127.0.0.1:1",
        platform=None,
    )
    assert env["XLA_FLAGS"].split() == [
        "--xla_dump_to=/tmp/x", "--xla_force_host_platform_device_count=4"
    ]
    assert "JAX_PLATFORMS" not in env  # platform=None leaves the caller's choice alone


def test_ctrl_c_is_forwarded_to_every_process(tmp_path):
    script = write_script(tmp_path, "sleepy.py", """
        import os, sys, time
        try:  # entered before "ready", so the interrupt cannot land outside it
            print("ready", flush=True)
            time.sleep(120)
        except KeyboardInterrupt:
            print("interrupted", os.environ["VJ_PROCESS_ID"], flush=True)
            sys.exit(1)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-m", "launch.local", "--processes", "2", "--", sys.executable, script],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # Wait until both children run their sleep, so the SIGINT hits the try block.
    ready = 0
    while ready < 2:
        line = proc.stdout.readline()
        assert line, "launcher ended before its children were ready"
        ready += line.strip().endswith("ready")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "[p0] interrupted 0" in out and "[p1] interrupted 1" in out, out + err
    assert "received SIGINT" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--processes", "0", "--", "true"], "--processes must be >= 1 (got 0)"),
        (["--processes", "2", "--devices-per-process", "0", "--", "true"],
         "--devices-per-process must be >= 1"),
        (["--processes", "2"], "no command given"),
    ],
)
def test_bad_arguments_are_rejected_before_anything_starts(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        local.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_missing_program_is_a_clear_error(capsys):
    code = local.main(["--processes", "2", "--", "/nonexistent/program"])
    assert code == 127
    assert "cannot start '/nonexistent/program'" in capsys.readouterr().err


def test_run_rejects_an_empty_command():
    with pytest.raises(ValueError, match="command is empty"):
        local.run([], processes=2)


def test_the_launcher_sets_the_variables_initialize_reads():
    from vision_jax.parallel import distributed

    for name in ("COORDINATOR_ADDRESS", "NUM_PROCESSES", "PROCESS_ID", "DEVICES_PER_PROCESS"):
        assert getattr(local, f"ENV_{name}") == getattr(distributed, f"ENV_{name}")


def test_the_launcher_does_not_import_jax():
    code = "import sys, launch.local; print('jax' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_environment_of_the_test_process_is_untouched():
    before = dict(os.environ)
    local.child_environment(os.environ, process_id=0, processes=1, devices_per_process=1,
                            coordinator_address="127.0.0.1:1")
    assert dict(os.environ) == before

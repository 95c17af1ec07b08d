"""launch.tpu_vm: the printed gcloud commands, and the remote shell scripts run for real in
bash against a stand-in worker home directory (no cloud, no gcloud needed)."""

import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from launch import tpu_commands, tpu_vm
from launch.tpu_commands import Target

REPO_ROOT = Path(__file__).resolve().parents[1]
WHERE = ["--name", "vj-test", "--zone", "us-central2-b", "--project", "my-proj"]


def dry_run(capsys, verb: str, *args: str) -> list[list[str]]:
    """The commands `--dry-run` prints, parsed back into argv lists."""
    assert tpu_vm.main([verb, *WHERE, "--dry-run", *args]) == 0
    return [shlex.split(line) for line in capsys.readouterr().out.splitlines()]


def flag(command: list[str], name: str) -> str | None:
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"{name}=")]
    assert len(values) <= 1, f"{name} given twice in {command}"
    return values[0] if values else None


def remote_script(command: list[str]) -> str:
    script = flag(command, "--command")
    assert script is not None, command
    return script


def test_module_entry_point_prints_one_shell_quoted_command_per_line():
    result = subprocess.run(
        [sys.executable, "-m", "launch.tpu_vm", "create", *WHERE, "--dry-run"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert shlex.split(line)[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "vj-test"]


def test_create_direct(capsys):
    [command] = dry_run(capsys, "create", "--accelerator-type", "v4-32", "--spot")
    assert command[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "vj-test"]
    assert flag(command, "--accelerator-type") == "v4-32"
    assert flag(command, "--version") == "tpu-ubuntu2204-base"
    assert flag(command, "--zone") == "us-central2-b"
    assert flag(command, "--project") == "my-proj"
    assert "--spot" in command and "--preemptible" not in command


def test_create_preemptible(capsys):
    [command] = dry_run(capsys, "create", "--preemptible", "--runtime-version", "v2-alpha-tpuv5")
    assert "--preemptible" in command and "--spot" not in command
    assert flag(command, "--version") == "v2-alpha-tpuv5"
    assert flag(command, "--accelerator-type") == "v4-8"


def test_create_queued_uses_a_queued_resource_for_the_node(capsys):
    [command] = dry_run(capsys, "create", "--queued", "--spot")
    assert command[:6] == ["gcloud", "compute", "tpus", "queued-resources", "create", "vj-test-qr"]
    assert flag(command, "--node-id") == "vj-test"
    assert flag(command, "--runtime-version") == "tpu-ubuntu2204-base"
    assert flag(command, "--accelerator-type") == "v4-8"
    assert "--spot" in command


@pytest.mark.parametrize(
    ("accelerator_type", "runtime"),
    [
        ("v2-8", "tpu-ubuntu2204-base"),
        ("v3-32", "tpu-ubuntu2204-base"),
        ("v4-32", "tpu-ubuntu2204-base"),
        ("v5litepod-16", "v2-alpha-tpuv5-lite"),
        ("v5p-8", "v2-alpha-tpuv5"),
        ("v6e-8", "v2-alpha-tpuv6e"),
    ],
)
def test_each_generation_gets_its_own_runtime_version(accelerator_type, runtime, capsys):
    [direct] = dry_run(capsys, "create", "--accelerator-type", accelerator_type)
    assert flag(direct, "--version") == runtime
    [queued] = dry_run(capsys, "create", "--accelerator-type", accelerator_type, "--queued")
    assert flag(queued, "--runtime-version") == runtime


def test_an_explicit_runtime_version_wins_even_for_an_unknown_generation(capsys):
    [command] = dry_run(capsys, "create", "--accelerator-type", "v7x-8",
                        "--runtime-version", "v2-alpha-tpu7x")
    assert flag(command, "--version") == "v2-alpha-tpu7x"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--queued", "--preemptible"], "queued resources take --spot"),
        (["create", "--spot", "--preemptible"], "not allowed with argument"),
        (["create", "--accelerator-type", "tpu8"], "--accelerator-type 'tpu8' must look like"),
        (["create", "--accelerator-type", "v7x-8"],
         "--accelerator-type 'v7x-8': unknown TPU generation 'v7x'; known: v2, v3, v4, "
         "v5litepod, v5p, v6e (v5litepod is v5e), or pass --runtime-version"),
        (["train", "--config", "c.py", "--workdir", "w", "--env", "NOVALUE"], "must be KEY=VALUE"),
        (["logs", "--fetch-to", "out"], "--fetch-to needs --num-workers"),
        (["setup", "--remote-dir", "../elsewhere"], "--remote-dir '../elsewhere' must be"),
        (["stop", "--", "--extra"], "only for 'train' and 'run'"),
    ],
)
def test_bad_arguments_fail_with_the_flag_named(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tpu_vm.main([args[0], *WHERE, "--dry-run", *args[1:]])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_invalid_tpu_name_is_rejected():
    with pytest.raises(ValueError, match="not a valid TPU name"):
        Target("My_TPU", "us-central2-b")


def test_setup_packs_copies_to_all_workers_and_installs(capsys):
    tar, scp, install, check = dry_run(capsys, "setup", "--jax-version", "0.10.2")
    assert tar[:2] == ["tar", "-czf"]
    assert {"--exclude=./.venv", "--exclude=./runs"} <= set(tar)
    assert tar[-3:] == ["-C", str(REPO_ROOT), "."]

    assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"]
    assert scp[5] == tar[2] and scp[6] == "vj-test:vision_jax.tar.gz"
    assert "--recurse" in scp and flag(scp, "--worker") == "all"
    assert flag(scp, "--zone") == "us-central2-b"

    for command in (install, check):
        assert command[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "vj-test"]
        assert flag(command, "--worker") == "all"
    script = remote_script(install)
    assert "tar -xzf vision_jax.tar.gz -C vision_jax" in script
    assert '.venv/bin/python -m pip install --quiet -e . "jax[tpu]==0.10.2"' in script
    assert "venv --seed --python 3.11 .venv" in script
    assert "jax.device_count()" in remote_script(check)


def test_train_runs_the_same_command_on_every_worker_in_the_background(capsys):
    [command] = dry_run(
        capsys, "train", "--config", "configs/mnist_cnn.py:smoke", "--workdir", "gs://b/runs/x",
        "--env", "TFDS_DATA_DIR=gs://b/tfds", "--", "--config.batch_size=512",
    )
    assert command[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "vj-test"]
    assert flag(command, "--worker") == "all"
    assert flag(command, "--zone") == "us-central2-b"
    script = remote_script(command)
    assert ("nohup env PYTHONUNBUFFERED=1 TFDS_DATA_DIR=gs://b/tfds .venv/bin/python -m "
            "vision_jax.train --config configs/mnist_cnn.py:smoke --workdir gs://b/runs/x "
            "--config.batch_size=512 > train.log 2>&1 < /dev/null &") in script


def test_logs_tail_and_fetch(capsys):
    [tail] = dry_run(capsys, "logs", "--follow", "--lines", "20")
    assert flag(tail, "--worker") == "all"
    assert "tail -n 20 -F vision_jax/train.log" in remote_script(tail)

    mkdir, *copies = dry_run(capsys, "logs", "--fetch-to", "fetched", "--num-workers", "4")
    assert mkdir == ["mkdir", "-p", "fetched"]
    assert [c[5:7] for c in copies] == [
        ["vj-test:vision_jax/train.log", f"fetched/worker-{i}.log"] for i in range(4)
    ]
    assert [flag(c, "--worker") for c in copies] == ["0", "1", "2", "3"]


def test_stop_and_delete(capsys):
    [stop] = dry_run(capsys, "stop")
    assert stop[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "stop", "vj-test"]
    [delete] = dry_run(capsys, "delete")
    assert delete[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "vj-test"]
    assert "--quiet" in delete and flag(delete, "--zone") == "us-central2-b"
    [delete_queued] = dry_run(capsys, "delete", "--queued")
    assert delete_queued[3:6] == ["queued-resources", "delete", "vj-test-qr"]
    assert {"--force", "--quiet"} <= set(delete_queued)


def test_without_gcloud_on_path_nothing_runs_and_the_error_says_why(monkeypatch, capsys,
                                                                     tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no gcloud, no tar
    assert tpu_vm.main(["stop", *WHERE]) == 2
    assert "gcloud is not installed or not on PATH" in capsys.readouterr().err


def test_tarball_leaves_out_venv_runs_and_caches(tmp_path):
    source = tmp_path / "repo"
    for name in ["vision_jax/train.py", ".venv/bin/python", "runs/mnist/log.txt",
                 "vision_jax/__pycache__/train.cpython-311.pyc", "vision_jax.egg-info/PKG-INFO",
                 "configs/runs_config.py"]:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("x")
    tarball = tmp_path / "code.tar.gz"
    subprocess.run(tpu_commands.tarball_command(str(source), str(tarball)), check=True)
    with tarfile.open(tarball) as archive:
        files = {os.path.normpath(m.name) for m in archive.getmembers() if m.isfile()}
    assert files == {"vision_jax/train.py", "configs/runs_config.py"}


def run_remote(script: str, home: Path) -> subprocess.CompletedProcess:
    """Runs a remote command the way ssh would: through a shell, in the home directory."""
    return subprocess.run(["bash", "-c", script], cwd=home, capture_output=True, text=True,
                          timeout=30)


def test_remote_train_kill_and_logs_scripts_work_in_a_real_shell(tmp_path):
    home = tmp_path
    fake_python = home / "vision_jax/.venv/bin/python"
    fake_python.parent.mkdir(parents=True)
    # Stands in for the venv's python: records what it was started with, then keeps running.
    fake_python.write_text('#!/bin/bash\necho "args: $*"\necho "data: $TFDS_DATA_DIR"\n'
                           "exec sleep 60\n")
    fake_python.chmod(0o755)
    train = tpu_commands.remote_train_script(
        config="configs/x.py", workdir="runs/x", extra_args=["--config.seed=3"],
        env={"TFDS_DATA_DIR": "/data dir"},
    )
    first = run_remote(train, home)
    assert first.returncode == 0, first.stderr
    pid = int((home / "vision_jax/train.pid").read_text())
    try:
        os.kill(pid, 0)  # alive, in the background, after the "ssh" command returned
        log = home / "vision_jax/train.log"
        deadline = time.monotonic() + 10
        while "data:" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.read_text().splitlines() == [
            "args: -m vision_jax.train --config configs/x.py --workdir runs/x --config.seed=3",
            "data: /data dir",
        ]

        second = run_remote(train, home)
        assert second.returncode == 1
        assert "a run is still going" in second.stderr

        [tail] = tpu_commands.logs_commands(Target("vj-test", "z"), lines=1)
        shown = run_remote(remote_script(tail), home)
        hostname = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
        assert shown.stdout == f"[{hostname}] data: /data dir\n"

        [kill] = tpu_commands.kill_commands(Target("vj-test", "z"))
        stopped = run_remote(remote_script(kill), home)
        assert stopped.stdout.strip().endswith(": stopped")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        assert not _alive(pid)
        assert not (home / "vision_jax/train.pid").exists()
    finally:
        if _alive(pid):
            os.kill(pid, 9)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed background child of an exited shell is reaped by init; until then it's a zombie.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def _fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    blocks, current, language = [], None, ""
    for line in markdown.splitlines():
        if line.startswith("```"):
            if current is None:
                current, language = [], line[3:]
            else:
                blocks.append((language, "\n".join(current) + "\n"))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def _as_dry_run(line: str) -> str:
    """The command as written, with --dry-run before any '--' (what follows goes to train)."""
    return line.replace(" -- ", " --dry-run -- ", 1) if " -- " in line else f"{line} --dry-run"


def test_every_walkthrough_command_runs_as_written_and_prints_the_quoted_output():
    """Each `python -m launch.tpu_vm` command in docs/tpu_vm.md's bash blocks runs, through
    bash, as written plus --dry-run; each output the page quotes is one of those outputs."""
    blocks = _fenced_blocks((REPO_ROOT / "docs" / "tpu_vm.md").read_text())
    invocations = [b for lang, b in blocks if lang == "bash" and "launch.tpu_vm" in b]
    quoted = [b for lang, b in blocks
              if lang == "" and b.startswith(("gcloud", "tar", "mkdir", "#"))]
    assert len(invocations) >= 10 and len(quoted) >= 10

    # `python` as the docs write it: this interpreter, importing this checkout.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO_ROOT)}
    printed = []
    for invocation in invocations:
        for line in invocation.replace("\\\n", " ").strip().splitlines():
            assert line.startswith("python -m launch.tpu_vm "), line
            result = subprocess.run(["bash", "-c", _as_dry_run(line)], cwd=REPO_ROOT, env=env,
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, f"{line}\n{result.stderr}"
            # The doc shows the checkout and temp folder of the machine it was made on.
            printed.append(result.stdout.replace(str(REPO_ROOT), "/work/main")
                           .replace(tempfile.gettempdir(), "/tmp"))
    for block in quoted:
        assert block in printed, f"docs/tpu_vm.md quotes output no command prints:\n{block}"

"""`python -m launch.tpu_vm run`, the preemption loop, driven end to end as a subprocess
against a fake `gcloud` executable first on PATH: a small Python script that records every
invocation and plays a TPU that is preempted once. The loop's own subprocess calls reach it
unchanged (and `tar` runs for real), so the test checks the exact command sequence.

The remote foreground training script is run in a real bash too, and sent a real SIGTERM.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from launch import tpu_commands, tpu_run
from launch.tpu_commands import Target

REPO_ROOT = Path(__file__).resolve().parents[1]
WHERE = ["--name", "vj-run", "--zone", "us-central2-b", "--project", "my-proj"]
TARGET = Target("vj-run", "us-central2-b", "my-proj")
TRAIN_ARGS = ["--config", "configs/mnist_cnn.py:smoke", "--workdir", "gs://bucket/runs/x"]

# The fake gcloud. Its world is world.json: the node's state (or null: absent), the queued
# resource's states to report one per describe (the last one sticks), and what each
# successive training ssh does: [exit code, node state after, queued state after].
FAKE_GCLOUD = textwrap.dedent("""\
    import json, os, sys
    root = os.environ["FAKE_GCLOUD_DIR"]
    with open(os.path.join(root, "calls.jsonl"), "a") as f:
        f.write(json.dumps(sys.argv[1:]) + "\\n")
    path = os.path.join(root, "world.json")
    world = json.load(open(path))
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    kind, verb = args[2], args[3]
    code = 0
    def missing(what):
        sys.stderr.write(f"ERROR: (gcloud) NOT_FOUND: {what} was not found\\n")
        return 1
    if verb == "describe" and world.get("describe_error"):
        sys.stderr.write("ERROR: (gcloud) You do not currently have an active account\\n")
        code = 1
    elif kind == "tpu-vm" and verb == "describe":
        code = missing("node") if world["node"] is None else print(world["node"]) or 0
    elif kind == "queued-resources" and verb == "describe":
        states = world["queued"]
        code = missing("queued resource") if not states else print(states[0]) or 0
        world["queued"] = states[1:] or states
    elif verb == "create" and world.pop("create_fails", 0):
        sys.stderr.write("ERROR: (gcloud) There is no more capacity in the zone\\n")
        code = 1
    elif verb == "create":
        world["node"] = "READY"
        world["queued"] = world.get("queued_after_create", ["ACTIVE"])
    elif verb == "delete":
        world["node"], world["queued"] = None, []
    elif verb == "ssh" and "vision_jax.train" in " ".join(sys.argv):
        code, world["node"], queued = world["trainings"].pop(0)
        world["queued"] = [queued] if queued else []
    json.dump(world, open(path, "w"))
    sys.exit(code)
""")


@pytest.fixture
def fake_gcloud(tmp_path):
    """Returns a function that sets the fake's world and runs `launch.tpu_vm` with it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(f"#!{sys.executable}\n{FAKE_GCLOUD}")
    gcloud.chmod(0o755)
    source = tmp_path / "repo"  # what setup packs, with real tar
    (source / "vision_jax").mkdir(parents=True)
    (source / "vision_jax" / "__init__.py").write_text("")

    def run(world: dict, *args: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
        (tmp_path / "world.json").write_text(json.dumps(world))
        (tmp_path / "calls.jsonl").write_text("")
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               "FAKE_GCLOUD_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
        result = subprocess.run(
            [sys.executable, "-m", "launch.tpu_vm", "run", *WHERE, *args,
             "--source", str(source), "--jax-version", "0.10.2", "--poll-seconds", "0",
             *TRAIN_ARGS],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
        calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
        return result, [["gcloud", *call] for call in calls]

    run.source = str(source)
    return run


def expected(source: str, *, queued: bool = False, spot: bool = True,
             accelerator_type: str = "v4-8"):
    """The command builders' output for this test's flags: what the loop must run."""
    where = {"queued": queued, "queued_resource_id": None}
    tarball = os.path.join(tempfile.gettempdir(), "vision_jax-vj-run.tar.gz")
    _tar, *setup = tpu_commands.setup_commands(TARGET, source_dir=source, tarball=tarball,
                                               jax_version="0.10.2")
    [create] = tpu_commands.create_commands(TARGET, spot=spot, accelerator_type=accelerator_type,
                                            **where)
    [delete] = tpu_commands.delete_commands(TARGET, **where)
    [train] = tpu_commands.run_train_commands(TARGET, config=TRAIN_ARGS[1],
                                              workdir=TRAIN_ARGS[3])
    describe = tpu_commands.describe_command(TARGET, **where)
    return describe, create, delete, setup, train


def test_a_vanished_spot_vm_is_recreated_set_up_and_the_same_training_run_again(fake_gcloud):
    result, calls = fake_gcloud(
        # The first training's ssh loses its VM (ssh exits 255, the node is PREEMPTED).
        {"node": None, "queued": [], "trainings": [[255, "PREEMPTED", None], [0, "READY", None]]},
        "--spot",
    )
    assert result.returncode == 0, result.stderr
    describe, create, delete, setup, train = expected(fake_gcloud.source)
    assert calls == [
        describe, create, describe, *setup, train,
        describe, delete, describe, create, describe, *setup, train,
        describe,
    ]
    assert "preempted: the TPU is PREEMPTED (training exit code 255): restart 1 of at most 10" \
        in result.stderr
    assert "training finished after 1 restarts" in result.stderr


def test_a_suspended_queued_resource_waits_for_capacity_again(fake_gcloud):
    result, calls = fake_gcloud(
        # The queued resource waits for capacity once after each create; the first training
        # is stopped by SIGTERM (remote exit 143) and the request ends up SUSPENDED.
        {"node": None, "queued": [], "queued_after_create": ["WAITING_FOR_RESOURCES", "ACTIVE"],
         "trainings": [[143, None, "SUSPENDED"], [0, "READY", "ACTIVE"]]},
        "--spot", "--queued", "--accelerator-type", "v4-32",
    )
    assert result.returncode == 0, result.stderr
    describe, create, delete, setup, train = expected(fake_gcloud.source, queued=True,
                                                       accelerator_type="v4-32")
    assert create[3:6] == ["queued-resources", "create", "vj-run-qr"] and "--spot" in create
    assert calls == [
        describe, create, describe, describe, *setup, train,
        describe, delete, describe, create, describe, describe, *setup, train,
        describe,
    ]
    assert "vj-run is WAITING_FOR_RESOURCES: waiting for capacity" in result.stderr


def test_sigterm_on_a_vm_that_stays_up_reruns_training_without_recreating(fake_gcloud):
    result, calls = fake_gcloud(
        {"node": "READY", "queued": [], "trainings": [[143, "READY", None], [0, "READY", None]]},
    )
    assert result.returncode == 0, result.stderr
    describe, _create, _delete, setup, train = expected(fake_gcloud.source, spot=False)
    assert calls == [describe, *setup, train, describe, train, describe]
    assert "training was stopped by SIGTERM; the TPU is still up: restart 1" in result.stderr


@pytest.mark.parametrize(
    ("code", "said"),
    [(1, "training failed with exit code 1 on a READY TPU: not a preemption"),
     (tpu_commands.KILLED_EXIT, "training was stopped by kill: not restarted")],
)
def test_a_training_error_or_a_kill_is_not_a_preemption_and_is_not_retried(fake_gcloud, code,
                                                                            said):
    result, calls = fake_gcloud(
        {"node": "READY", "queued": [], "trainings": [[code, "READY", None]]},
    )
    assert result.returncode == code
    describe, _create, _delete, setup, train = expected(fake_gcloud.source, spot=False)
    assert calls == [describe, *setup, train, describe]
    assert said in result.stderr


@pytest.mark.parametrize(
    ("world", "said"),
    [({"node": "STOPPED"},
      "vj-run is STOPPED, which run does not handle; start or delete it, then run again"),
     ({"node": None, "describe_error": True},
      "could not read the TPU's state (exit code 1): ERROR: (gcloud) You do not currently "
      "have an active account")],
)
def test_a_state_run_cannot_handle_stops_it_with_one_line(fake_gcloud, world, said):
    result, calls = fake_gcloud({"queued": [], "trainings": [], **world})
    assert result.returncode == 1
    describe, *_ = expected(fake_gcloud.source, spot=False)
    assert calls == [describe]
    assert result.stderr.strip().splitlines()[-1] == f"python -m launch.tpu_vm: {said}"


def test_restarts_are_bounded(fake_gcloud):
    result, calls = fake_gcloud(
        {"node": None, "queued": [], "create_fails": 1,
         "trainings": [[255, "PREEMPTED", None]] * 3},
        "--spot", "--max-restarts", "2",
    )
    assert result.returncode == 1
    describe, create, delete, setup, train = expected(fake_gcloud.source)
    # The failed create (no capacity) uses the first restart, one preemption the second.
    assert calls == [
        describe, create, describe, create, describe, *setup, train,
        describe, delete, describe, create, describe, *setup, train,
        describe,
    ]
    assert result.stderr.strip().splitlines()[-1] == (
        "python -m launch.tpu_vm: preempted: the TPU is PREEMPTED (training exit code 255); "
        "gave up after 2 restarts (--max-restarts); the workdir keeps the latest checkpoint")


def test_dry_run_prints_every_command_the_loop_can_run(capsys):
    from launch import tpu_vm

    assert tpu_vm.main(["run", *WHERE, "--spot", "--dry-run", *TRAIN_ARGS,
                        "--", "--config.batch_size=64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    commands = [shlex.split(line) for line in lines if not line.startswith("#")]
    verbs = [c[3:5] if c[0] == "gcloud" else c[:1] for c in commands]
    assert verbs == [["tpu-vm", "describe"], ["tpu-vm", "create"], ["tar"], ["tpu-vm", "scp"],
                     ["tpu-vm", "ssh"], ["tpu-vm", "ssh"], ["tpu-vm", "ssh"],
                     ["tpu-vm", "delete"]]
    assert "--config.batch_size=64" in commands[6][-3]


@pytest.mark.parametrize(
    ("args", "warned"),
    [
        (["train", "--workdir", "runs/x"], "fine on one host (v4-8), but a pod slice's hosts"),
        (["run", "--workdir", "runs/x"], "which a preemption deletes"),
        (["run", "--workdir", "runs/x", "--accelerator-type", "v4-32"],
         "a v4-32 has several hosts, which must write one checkpoint to shared storage"),
        (["run", "--workdir", "gs://b/x", "--accelerator-type", "v4-32"], None),
    ],
)
def test_a_local_workdir_gets_a_shared_storage_warning(args, warned, capsys):
    from launch import tpu_vm

    assert tpu_vm.main([args[0], *WHERE, "--dry-run", "--config", "c.py", *args[1:]]) == 0
    err = capsys.readouterr().err
    if warned:
        assert "warning: --workdir 'runs/x' is not gs://: " in err and warned in err
        assert "use --workdir gs://BUCKET/PATH" in err
    else:
        assert err == ""


def test_loop_arguments_are_checked():
    plan = tpu_run.RunPlan.build(TARGET, queued=False, queued_resource_id=None, create=[],
                                 setup=[], train=[])
    with pytest.raises(ValueError, match="--poll-seconds=-1 must be >= 0"):
        tpu_run.Loop(plan, poll_seconds=-1)


# The remote foreground script, in a real bash against a stand-in worker home directory.

def _worker_home(tmp_path: Path, python_body: str) -> Path:
    fake_python = tmp_path / "vision_jax/.venv/bin/python"
    fake_python.parent.mkdir(parents=True)
    fake_python.write_text("#!/bin/bash\n" + python_body)
    fake_python.chmod(0o755)
    return tmp_path


def _script(**kwargs) -> str:
    return tpu_commands.remote_run_script(config="configs/x.py", workdir="gs://b/x", **kwargs)


@pytest.mark.parametrize("exit_code", [0, 3])
def test_remote_run_script_passes_on_trainings_exit_code_and_keeps_a_log(tmp_path, exit_code):
    home = _worker_home(tmp_path, f'echo "args: $*"\necho "seed: $SEED"\nexit {exit_code}\n')
    result = subprocess.run(["bash", "-c", _script(env={"SEED": "7"})], cwd=home,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == exit_code
    lines = ["args: -m vision_jax.train --config configs/x.py --workdir gs://b/x", "seed: 7"]
    assert result.stdout.splitlines() == lines
    assert (home / "vision_jax/train.log").read_text().splitlines() == lines


def _start(script: str, home: Path) -> subprocess.Popen:
    worker = subprocess.Popen(["bash", "-c", script], cwd=home, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = home / "vision_jax/train.log"
    deadline = time.monotonic() + 10
    while not (log.exists() and "started" in log.read_text()):
        assert time.monotonic() < deadline, "the fake training never started"
        time.sleep(0.05)
    return worker


# Like the trainer: on SIGTERM it finishes (checkpoints) and exits 143.
TRAINER_LIKE = 'trap \'echo "checkpointed"; exit 143\' TERM\necho started\nsleep 60 & wait\n'


def test_kill_stops_a_training_started_by_run(tmp_path):
    home = _worker_home(tmp_path, TRAINER_LIKE)
    worker = _start(_script(), home)
    try:
        assert "a run is still going" in subprocess.run(
            ["bash", "-c", _script()], cwd=home, capture_output=True, text=True,
            timeout=30).stderr
        [kill] = tpu_commands.kill_commands(TARGET)
        script = next(a.split("=", 1)[1] for a in kill if a.startswith("--command="))
        stopped = subprocess.run(["bash", "-c", script], cwd=home, capture_output=True,
                                 text=True, timeout=30)
        assert stopped.stdout.strip().endswith(": stopped")
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert worker.returncode == tpu_commands.KILLED_EXIT
    assert out.splitlines() == ["started", "checkpointed"]
    assert "stopped by kill" in err


def test_remote_run_script_exits_143_when_the_worker_is_sent_sigterm(tmp_path):
    home = _worker_home(tmp_path, TRAINER_LIKE)
    worker = _start(_script(), home)
    try:
        os.killpg(worker.pid, signal.SIGTERM)  # what a preemption does to every process
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert worker.returncode == tpu_commands.SIGTERM_EXIT
    assert out.splitlines() == ["started", "checkpointed"]
    log = home / "vision_jax/train.log"
    assert log.read_text().splitlines() == ["started", "checkpointed"]
    assert not (home / "vision_jax/train.pid").exists()
    assert "stopped by SIGTERM (preemption or maintenance)" in err

"""The exact `gcloud` (and local `tar`/`mkdir`) commands behind `python -m launch.tpu_vm`.

Pure functions: each returns `list[list[str]]`, one argv per command, run in order. Nothing
here touches the network or the filesystem, so the commands can be printed (`--dry-run`)
and tested as they are.

Remote commands run through `gcloud compute tpus tpu-vm ssh --command`, in the login
shell's home directory on every worker (`--worker=all`): a pod slice has one VM per host
and each must run the same program for `jax.distributed.initialize()` to find its peers.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from launch import tpu_types

# Where `setup` installs uv (its installer's default) for creating the Python >= 3.11 venv
# that the TPU VM base images (Python 3.10) do not ship.
_UV = "$HOME/.local/bin/uv"
_UV_INSTALLER = "https://astral.sh/uv/install.sh"
# Build leftovers and local state that must not travel to the workers.
TARBALL_EXCLUDES = (
    "./.venv",
    "./runs",
    "./.git",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
)
PID_FILE = "train.pid"
# How remote_run_script says why training ended, when that was not training's own choice.
SIGTERM_EXIT = 143  # 128 + SIGTERM, as a shell reports a process killed by it
KILLED_EXIT = 130

_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VERSION = re.compile(r"^\d+(\.\d+)*$")
# Remote paths are pasted into shell commands: keep them to characters that need no quoting.
_REMOTE_PATH = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._/-]*$")


def check_remote_path(flag: str, path: str) -> str:
    """Remote paths are relative to the worker's home directory."""
    if not _REMOTE_PATH.match(path) or ".." in path.split("/"):
        raise ValueError(
            f"{flag} {path!r} must be a path relative to the worker's home directory, made of "
            "letters, digits, '.', '_', '-' and '/' (e.g. 'vision_jax')"
        )
    return path.rstrip("/")


@dataclass(frozen=True)
class Target:
    """The TPU VM (node) the commands address."""

    name: str
    zone: str
    project: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"--name {self.name!r} is not a valid TPU name: use lowercase letters, digits "
                "and hyphens, starting with a letter (e.g. 'vj-v4-8')"
            )
        if not self.zone or any(c.isspace() for c in self.zone):
            raise ValueError(f"--zone {self.zone!r} must be a zone name such as 'us-central2-b'")

    def location_flags(self) -> list[str]:
        flags = [f"--zone={self.zone}"]
        if self.project:
            flags.append(f"--project={self.project}")
        return flags


def _tpu_vm(target: Target, verb: str, *args: str) -> list[str]:
    return ["gcloud", "compute", "tpus", "tpu-vm", verb, *args, *target.location_flags()]


def _queued(target: Target, verb: str, resource_id: str, *args: str) -> list[str]:
    return [
        "gcloud", "compute", "tpus", "queued-resources", verb, resource_id, *args,
        *target.location_flags(),
    ]


def _ssh(target: Target, remote_command: str, worker: str = "all") -> list[str]:
    return _tpu_vm(target, "ssh", target.name, f"--worker={worker}", f"--command={remote_command}")


def default_queued_resource_id(name: str) -> str:
    return f"{name}-qr"


def create_commands(
    target: Target,
    *,
    accelerator_type: str = "v4-8",
    runtime_version: str | None = None,
    spot: bool = False,
    preemptible: bool = False,
    queued: bool = False,
    queued_resource_id: str | None = None,
) -> list[list[str]]:
    """Creates the TPU VM directly, or (`queued`) asks for it through a queued resource,
    which waits for capacity instead of failing when the zone has none. Without an explicit
    `runtime_version`, the accelerator's generation picks it (see launch/tpu_types.py)."""
    runtime_version = tpu_types.runtime_version(accelerator_type, runtime_version)
    if spot and preemptible:
        raise ValueError("--spot and --preemptible exclude each other; pick one")
    if queued:
        if preemptible:
            raise ValueError("queued resources take --spot, not --preemptible; use --spot")
        resource = queued_resource_id or default_queued_resource_id(target.name)
        command = _queued(
            target, "create", resource,
            f"--node-id={target.name}",
            f"--accelerator-type={accelerator_type}",
            f"--runtime-version={runtime_version}",
        )
        if spot:
            command.append("--spot")
        return [command]
    command = _tpu_vm(
        target, "create", target.name,
        f"--accelerator-type={accelerator_type}",
        f"--version={runtime_version}",
    )
    if spot:
        command.append("--spot")
    if preemptible:
        command.append("--preemptible")
    return [command]


def tarball_command(source_dir: str, tarball: str) -> list[str]:
    """Packs the repository (without venvs, runs, caches or git history) for the workers."""
    excludes = [f"--exclude={pattern}" for pattern in TARBALL_EXCLUDES]
    # Excludes go before the members: GNU tar ignores ones that follow them.
    return ["tar", "-czf", tarball, *excludes, "-C", source_dir, "."]


def remote_setup_script(remote_dir: str, remote_tarball: str, python_version: str,
                        jax_requirement: str) -> str:
    """Unpacks the code and installs it with TPU JAX into `<remote_dir>/.venv`.

    Re-running it after a code change only re-extracts and re-installs: the venv is kept.
    """
    directory = check_remote_path("--remote-dir", remote_dir)
    return " && ".join([
        f"mkdir -p {directory}",
        f"tar -xzf {remote_tarball} -C {directory}",
        f"rm -f {remote_tarball}",
        f"cd {directory}",
        f"(test -x {_UV} || curl -LsSf {_UV_INSTALLER} | sh)",
        f"(test -x .venv/bin/python || {_UV} venv --seed --python {python_version} .venv)",
        # Double quotes keep the brackets from globbing and read better than '"'"' nesting.
        f'.venv/bin/python -m pip install --quiet -e . "{jax_requirement}"',
    ])


def remote_check_script(remote_dir: str) -> str:
    """Prints each worker's view of the slice, joined the way training joins it. Run on all
    workers at once: on a pod slice each host waits for the others to come up."""
    directory = check_remote_path("--remote-dir", remote_dir)
    # Double quotes inside, so the single-quoted --command stays readable in --dry-run.
    probe = (
        "from vision_jax.parallel import distributed; distributed.initialize(); import jax; "
        'print("process", jax.process_index(), "of", jax.process_count(), "|", '
        'jax.local_device_count(), "local /", jax.device_count(), "global", '
        "jax.devices()[0].device_kind)"
    )
    return f"cd {directory} && .venv/bin/python -c {shlex.quote(probe)}"


def setup_commands(
    target: Target,
    *,
    source_dir: str,
    tarball: str,
    remote_dir: str = "vision_jax",
    python_version: str = "3.11",
    jax_version: str | None = None,
) -> list[list[str]]:
    """Pack locally, copy to every worker, unpack and `pip install -e . 'jax[tpu]'` there,
    then check that every worker sees the whole slice."""
    remote_dir = check_remote_path("--remote-dir", remote_dir)
    if not _VERSION.match(python_version):
        raise ValueError(f"--python {python_version!r} must be a version such as '3.11'")
    if jax_version is not None and not _VERSION.match(jax_version):
        raise ValueError(f"--jax-version {jax_version!r} must be a version such as '0.10.2'")
    remote_tarball = f"{remote_dir.replace('/', '_')}.tar.gz"
    jax_requirement = f"jax[tpu]=={jax_version}" if jax_version else "jax[tpu]"
    return [
        tarball_command(source_dir, tarball),
        _tpu_vm(target, "scp", tarball, f"{target.name}:{remote_tarball}",
                "--recurse", "--worker=all"),
        _ssh(target, remote_setup_script(remote_dir, remote_tarball, python_version,
                                         jax_requirement)),
        _ssh(target, remote_check_script(remote_dir)),
    ]


def _env_assignments(env: Mapping[str, str]) -> list[str]:
    for key in env:
        if not _ENV_KEY.match(key):
            raise ValueError(f"--env {key!r}: variable names are letters, digits and '_'")
    return [shlex.quote(f"{key}={value}") for key, value in env.items()]


def remote_train_script(
    *,
    config: str,
    workdir: str,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    remote_dir: str = "vision_jax",
    log_file: str = "train.log",
) -> str:
    """Starts training in the background (nohup), logging to `<remote_dir>/<log_file>`.

    Refuses to start a second run while the first one's pid is alive: a TPU chip can be
    opened by one process only, so the second would fail after its JAX import anyway.
    """
    remote_dir = check_remote_path("--remote-dir", remote_dir)
    log = check_remote_path("--log-file", log_file)
    assignments = _env_assignments({"PYTHONUNBUFFERED": "1", **(env or {})})
    train = shlex.join([".venv/bin/python", "-m", "vision_jax.train", "--config", config,
                        "--workdir", workdir, *extra_args])
    return " && ".join([
        f"cd {remote_dir}",
        f"if test -f {PID_FILE} && kill -0 \"$(cat {PID_FILE})\" 2>/dev/null; then "
        "echo \"$(hostname): a run is still going (pid $(cat " + PID_FILE + ")); "
        "stop it with: python -m launch.tpu_vm kill\" >&2; exit 1; fi",
        f"(nohup env {' '.join(assignments)} {train} > {log} 2>&1 < /dev/null & "
        f"echo $! > {PID_FILE})",
        f"echo \"$(hostname): training started, log in ~/{remote_dir}/{log}\"",
    ])


def train_commands(
    target: Target,
    *,
    config: str,
    workdir: str,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    remote_dir: str = "vision_jax",
    log_file: str = "train.log",
    worker: str = "all",
) -> list[list[str]]:
    """The same training command on every worker (`--worker=all`); see remote_train_script."""
    script = remote_train_script(config=config, workdir=workdir, extra_args=extra_args, env=env,
                                 remote_dir=remote_dir, log_file=log_file)
    return [_ssh(target, script, worker)]


def remote_run_script(
    *,
    config: str,
    workdir: str,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    remote_dir: str = "vision_jax",
    log_file: str = "train.log",
) -> str:
    """Runs training in the foreground of the ssh session (for `run`, which waits for it):
    the log goes to `<remote_dir>/<log_file>` (so `logs` works) and is streamed back, and
    the pid to `train.pid` (so `kill` works).

    Exits with training's exit code (the trainer itself exits SIGTERM_EXIT after the
    checkpoint a SIGTERM asks for); with SIGTERM_EXIT when the worker itself got SIGTERM
    (what a preemption or maintenance event sends every process), whatever training
    returned; with KILLED_EXIT when `kill` stopped it (`kill` removes the pid file).
    """
    remote_dir = check_remote_path("--remote-dir", remote_dir)
    log = check_remote_path("--log-file", log_file)
    assignments = _env_assignments({"PYTHONUNBUFFERED": "1", **(env or {})})
    train = shlex.join([".venv/bin/python", "-m", "vision_jax.train", "--config", config,
                        "--workdir", workdir, *extra_args])
    return "; ".join([
        f"cd {remote_dir} || exit 1",
        f"if test -f {PID_FILE} && kill -0 \"$(cat {PID_FILE})\" 2>/dev/null; then "
        "echo \"$(hostname): a run is still going (pid $(cat " + PID_FILE + ")); "
        "stop it with: python -m launch.tpu_vm kill\" >&2; exit 1; fi",
        "stopped=0",
        "trap stopped=1 TERM",
        f"env {' '.join(assignments)} {train} > {log} 2>&1 < /dev/null & pid=$!",
        f"echo $pid > {PID_FILE}",
        # tail ignores SIGTERM, to show what training prints while it checkpoints. A trapped
        # SIGTERM makes `wait` return at once: wait again while training finishes.
        f"(trap \"\" TERM; exec tail -n +1 -F --pid=$pid {log} 2>/dev/null) & wait $pid",
        "status=$?",
        "while kill -0 $pid 2>/dev/null; do wait $pid; status=$?; done",
        "wait",  # for tail to print the end of the log
        f"if test -f {PID_FILE}; then killed=0; rm -f {PID_FILE}; else killed=1; fi",
        "if test $stopped = 1; then echo \"$(hostname): stopped by SIGTERM (preemption or "
        f"maintenance)\" >&2; exit {SIGTERM_EXIT}; fi",
        f"if test $killed = 1; then echo \"$(hostname): stopped by kill\" >&2; "
        f"exit {KILLED_EXIT}; fi",
        "exit $status",
    ])


def run_train_commands(
    target: Target,
    *,
    config: str,
    workdir: str,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    remote_dir: str = "vision_jax",
    log_file: str = "train.log",
) -> list[list[str]]:
    """Training in the foreground on every worker; see remote_run_script."""
    script = remote_run_script(config=config, workdir=workdir, extra_args=extra_args, env=env,
                               remote_dir=remote_dir, log_file=log_file)
    return [_ssh(target, script)]


def describe_command(
    target: Target, *, queued: bool = False, queued_resource_id: str | None = None
) -> list[str]:
    """Prints only the state: the node's (READY, PREEMPTED, ...) or, for a queued resource,
    the request's (WAITING_FOR_RESOURCES, ACTIVE, SUSPENDED, ...). Fails with NOT_FOUND when
    there is none."""
    if queued:
        resource = queued_resource_id or default_queued_resource_id(target.name)
        return _queued(target, "describe", resource, "--format=value(state.state)")
    return _tpu_vm(target, "describe", target.name, "--format=value(state)")


def logs_commands(
    target: Target,
    *,
    remote_dir: str = "vision_jax",
    log_file: str = "train.log",
    lines: int = 100,
    follow: bool = False,
    worker: str = "all",
    fetch_to: str | None = None,
    num_workers: int | None = None,
) -> list[list[str]]:
    """Tails each worker's log, lines prefixed with its hostname; or, with `fetch_to`,
    copies worker i's log to `<fetch_to>/worker-<i>.log` (one scp per worker, since
    `--worker=all` would write every copy to the same local file)."""
    if lines < 0:
        raise ValueError(f"--lines={lines} must be >= 0")
    path = (f"{check_remote_path('--remote-dir', remote_dir)}/"
            f"{check_remote_path('--log-file', log_file)}")
    if fetch_to is not None:
        if not num_workers or num_workers < 1:
            raise ValueError("--fetch-to needs --num-workers N (the slice's host count)")
        return [["mkdir", "-p", fetch_to]] + [
            _tpu_vm(target, "scp", f"{target.name}:{path}", f"{fetch_to}/worker-{i}.log",
                    f"--worker={i}")
            for i in range(num_workers)
        ]
    tail = ["tail", "-n", str(lines)] + (["-F"] if follow else []) + [path]
    # `sed -u` so that a followed log is not held back in sed's buffer.
    remote = f"{shlex.join(tail)} | sed -u \"s/^/[$(hostname)] /\""
    return [_ssh(target, remote, worker)]


def kill_commands(target: Target, *, remote_dir: str = "vision_jax") -> list[list[str]]:
    """Stops the training started by `train` on every worker; the VMs keep running."""
    remote = (
        f"cd {check_remote_path('--remote-dir', remote_dir)} && "
        f"if test -f {PID_FILE} && kill \"$(cat {PID_FILE})\" 2>/dev/null; "
        "then echo \"$(hostname): stopped\"; else echo \"$(hostname): no run to stop\"; fi; "
        f"rm -f {PID_FILE}"
    )
    return [_ssh(target, remote)]


def stop_commands(target: Target) -> list[list[str]]:
    """Stops the VM (billing for the TPU stops; disks stay). Not every TPU type supports it."""
    return [_tpu_vm(target, "stop", target.name)]


def delete_commands(
    target: Target, *, queued: bool = False, queued_resource_id: str | None = None
) -> list[list[str]]:
    """Deletes the VM without a prompt; for a queued resource, `--force` deletes its node too."""
    if queued:
        resource = queued_resource_id or default_queued_resource_id(target.name)
        return [_queued(target, "delete", resource, "--force", "--quiet")]
    return [_tpu_vm(target, "delete", target.name, "--quiet")]

"""Run one command as N cooperating JAX processes on this machine (a simulated multi-host run).

    python -m launch.local --processes 2 --devices-per-process 4 -- \\
        python -m vision_jax.train --config configs/mnist_cnn.py --workdir runs/mnist

Every process gets the environment `vision_jax.parallel.distributed.initialize()` reads
(coordinator 127.0.0.1:PORT, process count, its id, CPU devices per process), so the
command needs no flags of its own. Output comes back line by line prefixed `[p0]`, `[p1]`.
Gloo's C++ connection lines (``[Gloo] Rank 3 is connected to 7 peer ranks...``, one per
device of a CPU run, written below anything Python can filter) are dropped, unless the
command passes ``--verbosity``/``-v`` (as `vision_jax`'s entry points keep library logs then).
If one process fails the others are stopped (SIGTERM, then SIGKILL after a grace period):
a JAX peer that lost a partner would otherwise wait minutes in a collective.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO

# The variables vision_jax.parallel.distributed.initialize() reads. Spelled out, not imported:
# importing vision_jax would import JAX (on a TPU VM that also claims the TPU environment) into
# a launcher that runs no JAX itself. tests/test_launch_local.py checks that the names agree.
ENV_COORDINATOR_ADDRESS = "VJ_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "VJ_NUM_PROCESSES"
ENV_PROCESS_ID = "VJ_PROCESS_ID"
ENV_DEVICES_PER_PROCESS = "VJ_DEVICES_PER_PROCESS"
_TAG = "[launch.local]"
_POLL_S = 0.05
_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
# One lock for every line we write, so lines from different children never interleave.
_OUTPUT_LOCK = threading.Lock()
# Gloo (the CPU collectives' transport) prints "[Gloo] Rank 3 is connected to 7 peer ranks.
# Expected number of connected peer ranks is : 7" from C++ at connection time, one per
# device, from several threads at once, and each message piece by piece: pieces of
# different messages interleave within and across lines ("[Gloo] Rank 76[Gloo] Rank 5 is
# connected to ...", " is connected to ", a bare "77"). So a line is Gloo's when nothing but
# numbers and blanks is left once its pieces are taken out (`GlooLines`).
_GLOO_PIECE = re.compile(r"\[Gloo\] Rank |is connected to|peer ranks\.|"
                         r"Expected number of connected peer ranks is :")
_NUMBERS_AND_BLANKS = " \t\r\n0123456789"
_VERBOSITY_FLAG = re.compile(r"^(--verbosity|-v)(=.*|\d*)$")


def asks_for_library_logs(command: Sequence[str]) -> bool:
    """Whether `command` passes absl's ``--verbosity``/``-v`` (then Gloo's lines are kept)."""
    return any(_VERBOSITY_FLAG.match(arg) for arg in command)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def flags_without_device_count(env: Mapping[str, str]) -> list[str]:
    """`env`'s XLA flags less any simulated device count, which the caller then sets."""
    return [flag for flag in env.get("XLA_FLAGS", "").split()
            if not flag.startswith(_DEVICE_COUNT_FLAG)]


def child_environment(
    base: Mapping[str, str],
    *,
    process_id: int,
    processes: int,
    devices_per_process: int,
    coordinator_address: str,
    platform: str | None = "cpu",
) -> dict[str, str]:
    """The environment of process `process_id`: `base` plus what `initialize()` reads."""
    env = dict(base)
    env[ENV_COORDINATOR_ADDRESS] = coordinator_address
    env[ENV_NUM_PROCESSES] = str(processes)
    env[ENV_PROCESS_ID] = str(process_id)
    env[ENV_DEVICES_PER_PROCESS] = str(devices_per_process)
    # Also through XLA_FLAGS, so the device count holds for commands that never call
    # initialize() (e.g. a plain `python -c "import jax; ..."`).
    env["XLA_FLAGS"] = " ".join([*flags_without_device_count(env),
                                 f"{_DEVICE_COUNT_FLAG}={devices_per_process}"])
    if platform:
        # N processes on one machine must not all grab the same accelerator.
        env["JAX_PLATFORMS"] = platform
    # Children write into pipes, where Python would otherwise buffer whole blocks.
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


def _shell_exit_code(returncode: int) -> int:
    # The shell's convention: death by signal N reads as 128 + N.
    return 128 - returncode if returncode < 0 else returncode


class GlooLines:
    """Tells one stream's Gloo connection lines, as they come: a line holding Gloo's pieces
    and nothing else but numbers and blanks, and a line of bare numbers or blanks right after
    one (a piece's number that Gloo's threads left on a line of its own). One per stream:
    it remembers whether the line before was Gloo's."""

    def __init__(self) -> None:
        self._after_gloo = False

    def __call__(self, line: str) -> bool:
        rest, pieces = _GLOO_PIECE.subn("", line)
        if not rest.strip(_NUMBERS_AND_BLANKS) and (pieces or self._after_gloo):
            self._after_gloo = True
            return True
        self._after_gloo = False
        return False


def _pump(stream: IO[bytes], prefix: str, target_name: str,
          drop: Callable[[str], bool] | None) -> None:
    """Copies one child stream line by line, prefixed, leaving out lines `drop` is true of;
    the target is looked up per line so a caller's redirect of sys.stdout (pytest's capsys,
    for one) is honoured."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        if drop is not None and drop(line):
            continue
        if not line.endswith("\n"):
            line += "\n"
        target = getattr(sys, target_name)
        with _OUTPUT_LOCK:
            target.write(prefix + line)
            target.flush()
    stream.close()


def _say(message: str) -> None:
    with _OUTPUT_LOCK:
        print(f"{_TAG} {message}", file=sys.stderr, flush=True)


class _Supervisor:
    """Watches the children; on the first failure, or a signal to the launcher, stops them.

    Each child leads its own process group, so whatever it spawns is signalled with it.
    """

    def __init__(self, grace_period_s: float):
        self.grace_period_s = grace_period_s
        self.procs: list[subprocess.Popen[bytes]] = []
        self.interrupted_code: int | None = None  # 128 + the signal the launcher received
        self.failure: tuple[int, int] | None = None  # (process id, its returncode)
        self._escalation: list[tuple[float, signal.Signals]] = []  # (when, signal to send)

    def signal_running(self, sig: signal.Signals) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:  # exited between poll() and killpg()
                    pass

    def kill_all_groups(self) -> None:
        # Grandchildren may outlive a child; their group keeps the child's pid as its id.
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _stop_children(self, first: signal.Signals) -> None:
        """Sends `first` now, then escalates (SIGINT → SIGTERM → SIGKILL) every grace period."""
        now = time.monotonic()
        self.signal_running(first)
        later = {signal.SIGINT: [signal.SIGTERM, signal.SIGKILL], signal.SIGKILL: []}
        steps = later.get(first, [signal.SIGKILL])
        self._escalation = [(now + (i + 1) * self.grace_period_s, sig)
                            for i, sig in enumerate(steps)]

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.interrupted_code is not None:  # a second Ctrl-C: stop waiting politely
            self._stop_children(signal.SIGKILL)
            return
        self.interrupted_code = 128 + signum
        _say(f"received {signal.Signals(signum).name}; forwarding it to the processes")
        self._stop_children(signal.Signals(signum))

    @contextlib.contextmanager
    def forwarding_signals(self) -> Iterator[None]:
        """Ctrl-C and SIGTERM to the launcher go to the children (only the main thread may
        install handlers; called from another thread, signals keep their old meaning)."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def wait(self) -> int:
        """Returns once every child has exited: 0, or the code `run` documents."""
        reported: set[int] = set()
        while True:
            codes = [proc.poll() for proc in self.procs]
            for pid, code in enumerate(codes):
                if code is None or pid in reported:
                    continue
                reported.add(pid)
                if code != 0 and self.failure is None and self.interrupted_code is None:
                    self.failure = (pid, code)
                    others = sum(c is None for c in codes)
                    stopping = f"; terminating the other {others} running" if others else ""
                    _say(f"process {pid} {_describe_exit(code)}{stopping}")
                    self._stop_children(signal.SIGTERM)
            if all(code is not None for code in codes):
                break
            if self._escalation and time.monotonic() >= self._escalation[0][0]:
                _, sig = self._escalation.pop(0)
                self.signal_running(sig)
            time.sleep(_POLL_S)

        if self.interrupted_code is not None:
            _say("interrupted; all processes stopped")
            return self.interrupted_code
        if self.failure is not None:
            pid, code = self.failure
            _say(f"FAILED: process {pid} of {len(self.procs)} {_describe_exit(code)}")
            return _shell_exit_code(code) or 1
        return 0


def run(
    command: Sequence[str],
    processes: int,
    devices_per_process: int = 1,
    *,
    port: int | None = None,
    platform: str | None = "cpu",
    grace_period_s: float = 5.0,
    env: Mapping[str, str] | None = None,
    gloo_lines: bool | None = None,
) -> int:
    """Runs `command` as `processes` processes; returns 0, or the first failure's exit code
    (128 + N for death by signal N, 130 after Ctrl-C). Gloo's connection lines are shown when
    `gloo_lines`, by default when the command passes ``--verbosity``."""
    if not command:
        raise ValueError("command is empty; give the program to run after '--'")
    if processes < 1:
        raise ValueError(f"processes={processes} must be >= 1")
    if devices_per_process < 1:
        raise ValueError(f"devices_per_process={devices_per_process} must be >= 1")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port={port} must be in 1..65535")
    if grace_period_s < 0:
        raise ValueError(f"grace_period_s={grace_period_s} must be >= 0")

    if gloo_lines is None:
        gloo_lines = asks_for_library_logs(command)
    coordinator = f"127.0.0.1:{port or free_port()}"
    base_env = os.environ if env is None else env
    supervisor = _Supervisor(grace_period_s)
    pumps: list[threading.Thread] = []
    # Signals are forwarded from before the first child starts: none may be left orphaned.
    with supervisor.forwarding_signals():
        try:
            for pid in range(processes):
                if supervisor.interrupted_code is not None:
                    break  # interrupted while starting: do not start the rest
                proc = subprocess.Popen(
                    list(command),
                    env=child_environment(
                        base_env,
                        process_id=pid,
                        processes=processes,
                        devices_per_process=devices_per_process,
                        coordinator_address=coordinator,
                        platform=platform,
                    ),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,  # the tty's Ctrl-C reaches us only; we forward it
                )
                supervisor.procs.append(proc)
                # The OS pid, so a user (or a test) can signal one process of the job.
                _say(f"started process {pid} of {processes} (pid {proc.pid})")
                for stream, target in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
                    drop = None if gloo_lines else GlooLines()
                    thread = threading.Thread(
                        target=_pump, args=(stream, f"[p{pid}] ", target, drop), daemon=True
                    )
                    thread.start()
                    pumps.append(thread)
        except OSError as error:
            supervisor.kill_all_groups()
            raise RuntimeError(f"cannot start {command[0]!r}: {error}") from error
        except BaseException:
            supervisor.kill_all_groups()
            raise
        try:
            returncode = supervisor.wait()
        finally:
            supervisor.kill_all_groups()
    for thread in pumps:
        thread.join(timeout=2.0)
    return returncode


def _parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    # Everything after the first '--' belongs to the command, untouched by argparse.
    split = argv.index("--") if "--" in argv else len(argv)
    own, command = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m launch.local",
        description="Run a command as N JAX processes on this machine "
        "(coordinator on 127.0.0.1).",
        epilog="example: python -m launch.local --processes 2 --devices-per-process 4 -- "
        "python -m vision_jax.train --config configs/mnist_cnn.py --workdir runs/mnist",
    )
    parser.add_argument("--processes", type=int, required=True, help="number of processes")
    parser.add_argument("--devices-per-process", type=int, default=1,
                        help="simulated CPU devices in each process (default 1)")
    parser.add_argument("--port", type=int, default=None,
                        help="coordinator port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--platform", default="cpu",
                        help="JAX_PLATFORMS for the children (default cpu; '' keeps yours)")
    parser.add_argument("--grace-period", type=float, default=5.0,
                        help="seconds between SIGTERM and SIGKILL when stopping (default 5)")
    args = parser.parse_args(own)
    if not command:
        parser.error("no command given; put it after '--', e.g. -- python -m vision_jax.train")
    if args.processes < 1:
        parser.error(f"--processes must be >= 1 (got {args.processes})")
    if args.devices_per_process < 1:
        parser.error(f"--devices-per-process must be >= 1 (got {args.devices_per_process})")
    if args.port is not None and not 0 < args.port < 65536:
        parser.error(f"--port must be in 1..65535 (got {args.port})")
    if args.grace_period < 0:
        parser.error(f"--grace-period must be >= 0 (got {args.grace_period})")
    return args, command


def main(argv: Sequence[str] | None = None) -> int:
    args, command = _parse(sys.argv[1:] if argv is None else argv)
    try:
        return run(
            command,
            args.processes,
            args.devices_per_process,
            port=args.port,
            platform=args.platform or None,
            grace_period_s=args.grace_period,
        )
    except RuntimeError as error:
        _say(str(error))
        return 127


if __name__ == "__main__":
    sys.exit(main())

"""`python -m launch.tpu_vm run`: keeps one training run going on spot or preemptible TPUs.

A spot slice can be taken back at any time. The loop creates the TPU if it is absent, sets
it up, runs training in the foreground of an ssh session on every worker, and when the
slice is preempted (the VM is gone or PREEMPTED, the queued resource SUSPENDED, or the
training was stopped by SIGTERM) it deletes what is left, waits for capacity, recreates,
sets up again and re-runs the same command. Training resumes from the checkpoint in its
workdir, which is why that workdir must be a gs:// bucket: a VM's disk dies with it.

Every command is a real subprocess (gcloud from PATH, tar), printed before it runs; the
tests put a fake `gcloud` first on PATH and check the sequence.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from launch import tpu_commands
from launch.tpu_commands import Target

# States as `gcloud ... describe --format=value(state)` prints them (the node's, or with
# --queued the queued resource's; https://cloud.google.com/tpu/docs/queued-resources).
READY_STATES = frozenset({"READY", "ACTIVE"})
WAIT_STATES = frozenset({
    "CREATING", "STARTING", "RESTARTING", "REPAIRING", "DELETING",  # node
    "ACCEPTED", "WAITING_FOR_RESOURCES", "PROVISIONING", "SUSPENDING",  # queued resource
})
GONE_STATES = frozenset({"PREEMPTED", "TERMINATED", "FAILED", "SUSPENDED"})
SSH_LOST_EXIT = 255  # ssh's own exit when the connection drops (the VM went away)


class RunError(RuntimeError):
    """The loop cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class RunPlan:
    """The commands the loop chooses between, built once from the command line."""

    target: Target
    describe: list[str]
    create: list[list[str]]
    delete: list[list[str]]
    setup: list[list[str]]
    train: list[list[str]]

    @classmethod
    def build(cls, target: Target, *, queued: bool, queued_resource_id: str | None,
              create: list[list[str]], setup: list[list[str]],
              train: list[list[str]]) -> RunPlan:
        where = {"queued": queued, "queued_resource_id": queued_resource_id}
        return cls(target, tpu_commands.describe_command(target, **where), create,
                   tpu_commands.delete_commands(target, **where), setup, train)

    def dry_run_lines(self, max_restarts: int, poll_seconds: float) -> list[str]:
        """Every command the loop may run, in its order, with the decisions as comments."""
        lines = ["# probe (absent, READY/ACTIVE, PREEMPTED/SUSPENDED, ...):",
                 shlex.join(self.describe),
                 "# if absent: create; until READY/ACTIVE, probe again every "
                 f"{poll_seconds:g} s",
                 *map(shlex.join, self.create),
                 "# set up every worker:",
                 *map(shlex.join, self.setup),
                 "# train in the foreground on every worker:",
                 *map(shlex.join, self.train),
                 "# then probe; if preempted (gone, PREEMPTED/SUSPENDED, or SIGTERM): delete, "
                 f"and again from create (at most {max_restarts} restarts):",
                 *map(shlex.join, self.delete)]
        return lines


def _say(message: str) -> None:
    print(f"[run] {message}", file=sys.stderr, flush=True)


def _call(command: Sequence[str]) -> int:
    print(f"+ {shlex.join(command)}", file=sys.stderr, flush=True)
    return subprocess.run(list(command), check=False).returncode


def _call_all(commands: Sequence[Sequence[str]]) -> int:
    for command in commands:
        code = _call(command)
        if code != 0:
            return code
    return 0


def probe(plan: RunPlan) -> str | None:
    """The TPU's state, or None when it does not exist."""
    print(f"+ {shlex.join(plan.describe)}", file=sys.stderr, flush=True)
    result = subprocess.run(plan.describe, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return result.stdout.strip().upper() or None
    if "NOT_FOUND" in result.stderr or "not found" in result.stderr:
        return None
    last_line = (result.stderr.strip().splitlines() or [""])[-1]
    raise RunError(f"could not read the TPU's state (exit code {result.returncode}): "
                   f"{last_line}")


class Loop:
    """create -> setup -> train, again after each preemption, at most `max_restarts` times."""

    def __init__(self, plan: RunPlan, *, max_restarts: int = 10, poll_seconds: float = 60.0,
                 max_wait_seconds: float = 24 * 3600.0,
                 sleep: Callable[[float], None] = time.sleep):
        if max_restarts < 0:
            raise ValueError(f"--max-restarts={max_restarts} must be >= 0")
        if poll_seconds < 0:
            raise ValueError(f"--poll-seconds={poll_seconds} must be >= 0")
        self.plan = plan
        self.max_restarts = max_restarts
        self.poll_seconds = poll_seconds
        self.max_wait_seconds = max_wait_seconds
        self.sleep = sleep
        self.restarts = 0

    def _restart(self, reason: str) -> None:
        self.restarts += 1
        if self.restarts > self.max_restarts:
            raise RunError(f"{reason}; gave up after {self.max_restarts} restarts "
                           "(--max-restarts); the workdir keeps the latest checkpoint")
        _say(f"{reason}: restart {self.restarts} of at most {self.max_restarts}")

    def ensure_ready(self, state: str | None) -> bool:
        """Brings the TPU to READY (node) or ACTIVE (queued resource): creates it if absent,
        deletes and recreates it if preempted, waits while it is on its way. Returns whether
        it was (re)created, i.e. needs `setup`."""
        created = False
        deadline = time.monotonic() + self.max_wait_seconds
        while state not in READY_STATES:
            if state is None:
                _say(f"{self.plan.target.name} is absent: creating it")
                code = _call_all(self.plan.create)
                if code == 0:
                    created = True
                else:
                    self._restart(f"create failed with exit code {code} (no capacity?)")
                    self.sleep(self.poll_seconds)
            elif state in GONE_STATES:
                _say(f"{self.plan.target.name} is {state}: deleting it to create it again")
                code = _call_all(self.plan.delete)
                if code != 0:
                    raise RunError(f"deleting the {state} TPU failed with exit code {code}")
            elif state in WAIT_STATES:
                _say(f"{self.plan.target.name} is {state}: waiting for capacity, next look in "
                     f"{self.poll_seconds:g} s")
                self.sleep(self.poll_seconds)
            else:
                raise RunError(f"{self.plan.target.name} is {state}, which run does not handle;"
                               " start or delete it, then run again")
            if time.monotonic() > deadline:
                raise RunError(f"{self.plan.target.name} not ready after "
                               f"{self.max_wait_seconds:g} s (still {state})")
            state = probe(self.plan)
        _say(f"{self.plan.target.name} is {state}")
        return created

    def run(self) -> int:
        state = probe(self.plan)
        needs_setup = True
        while True:
            needs_setup = self.ensure_ready(state) or needs_setup
            if needs_setup:
                _say("setting up every worker")
                code = _call_all(self.plan.setup)
                if code != 0:
                    state = probe(self.plan)
                    if state in READY_STATES:
                        raise RunError(f"setup failed with exit code {code} on a "
                                       f"{state} TPU; fix it and run again")
                    self._restart(f"preempted during setup ({state or 'gone'})")
                    continue
                needs_setup = False
            _say("training on every worker")
            code = _call_all(self.plan.train)
            state = probe(self.plan)
            if state not in READY_STATES:
                needs_setup = True
                self._restart(f"preempted: the TPU is {state or 'gone'} "
                              f"(training exit code {code})")
            elif code == 0:
                _say(f"training finished after {self.restarts} restarts")
                return 0
            elif code == tpu_commands.SIGTERM_EXIT:
                self._restart("training was stopped by SIGTERM; the TPU is still up")
            elif code == SSH_LOST_EXIT:
                self._restart("the ssh connection was lost; the TPU is still up")
            elif code == tpu_commands.KILLED_EXIT:
                _say("training was stopped by kill: not restarted")
                return code
            else:
                _say(f"training failed with exit code {code} on a {state} TPU: not a "
                     "preemption, so not retried")
                return code

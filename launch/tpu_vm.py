"""Cloud TPU VMs from zero to a training run: `python -m launch.tpu_vm VERB --name N --zone Z`.

    create  make the VM (or, with --queued, a queued resource that waits for capacity)
    setup   copy this repository to every worker and install it with TPU JAX
    train   start `python -m vision_jax.train` on every worker, in the background
    logs    tail (or --fetch-to a folder) each worker's training log
    kill    stop the training on every worker, keep the VM
    stop    stop the VM
    delete  delete the VM (or the queued resource and its VM)
    run     create if absent, set up, train in the foreground; after a preemption wait for
            capacity, recreate and run the same command again (it resumes from --workdir)

`--dry-run` prints the exact commands, one per line, and runs nothing. The walkthrough is
docs/tpu_vm.md; the commands themselves are built in launch/tpu_commands.py.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from launch import tpu_commands, tpu_run, tpu_types
from launch.tpu_commands import Target

_REPO_ROOT = Path(__file__).resolve().parents[1]
_PROG = "python -m launch.tpu_vm"


def _installed_jax_version() -> str | None:
    # The workers get the JAX this checkout is tested with; pyproject pins it.
    try:
        return importlib.metadata.version("jax")
    except importlib.metadata.PackageNotFoundError:
        return None


def _env_pairs(values: Sequence[str]) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--env {item!r} must be KEY=VALUE (e.g. --env TFDS_DATA_DIR=gs://b)")
        pairs[key] = value
    return pairs


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", required=True, help="TPU VM (node) name, e.g. vj-v4-8")
    common.add_argument("--zone", required=True, help="zone, e.g. us-central2-b")
    common.add_argument("--project", default=None, help="GCP project (default: gcloud's)")
    common.add_argument("--dry-run", action="store_true",
                        help="print the commands, one per line, and run nothing")
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument("--remote-dir", default="vision_jax",
                        help="code folder on the workers, relative to home (default vision_jax)")
    queued = argparse.ArgumentParser(add_help=False)
    queued.add_argument("--queued", action="store_true",
                        help="use a queued resource (gcloud compute tpus queued-resources)")
    queued.add_argument("--queued-resource-id", default=None,
                        help="queued resource id (default NAME-qr)")

    parser = argparse.ArgumentParser(prog=_PROG, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    creation = argparse.ArgumentParser(add_help=False)
    creation.add_argument("--accelerator-type", default="v4-8",
                          help="v4-8 (one host), v4-32 (4 hosts), v5litepod-16, v5p-8, v6e-8, "
                          "... (default v4-8)")
    creation.add_argument("--runtime-version", default=None,
                          help="TPU software version (default: the accelerator generation's: "
                          + ", ".join(f"{g} {v}" for g, v in tpu_types.RUNTIME_VERSIONS.items())
                          + ")")
    kind = creation.add_mutually_exclusive_group()
    kind.add_argument("--spot", action="store_true", help="Spot VM: cheaper, can be preempted")
    kind.add_argument("--preemptible", action="store_true",
                      help="preemptible VM (older model, 24 h limit); not with --queued")
    installing = argparse.ArgumentParser(add_help=False)
    installing.add_argument("--source", default=str(_REPO_ROOT),
                            help="local repository to copy (default: this checkout)")
    installing.add_argument("--python", default="3.11", help="Python version of the worker venv")
    installing.add_argument("--jax-version", default=_installed_jax_version(),
                            help="jax[tpu] version to install (default: the local jax's)")
    training = argparse.ArgumentParser(add_help=False)
    training.add_argument("--config", required=True, help="e.g. configs/mnist_cnn.py")
    training.add_argument("--workdir", required=True,
                          help="run folder; on a pod slice, and for run, a gs:// bucket")
    training.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                          help="environment variable for the run (repeatable)")
    training.add_argument("--log-file", default="train.log", help="log name inside --remote-dir")

    verbs.add_parser("create", parents=[common, queued, creation], help="create the TPU VM")
    verbs.add_parser("setup", parents=[common, remote, installing],
                     help="copy the code to every worker and install it")
    train = verbs.add_parser(
        "train", parents=[common, remote, training],
        help="start training on every worker (extra train flags after '--')",
    )
    train.add_argument("--worker", default="all", help="which workers (default all)")

    logs = verbs.add_parser("logs", parents=[common, remote], help="tail each worker's log")
    logs.add_argument("--log-file", default="train.log", help="log name inside --remote-dir")
    logs.add_argument("--lines", type=int, default=100, help="lines to show (default 100)")
    logs.add_argument("--follow", action="store_true", help="keep following the logs")
    logs.add_argument("--worker", default="all", help="which workers (default all)")
    logs.add_argument("--fetch-to", default=None, metavar="DIR",
                      help="copy the logs to DIR/worker-<i>.log instead of tailing")
    logs.add_argument("--num-workers", type=int, default=None,
                      help="number of hosts in the slice (needed by --fetch-to)")

    verbs.add_parser("kill", parents=[common, remote], help="stop the training, keep the VM")
    verbs.add_parser("stop", parents=[common], help="stop the TPU VM")
    verbs.add_parser("delete", parents=[common, queued], help="delete the TPU VM (no prompt)")

    run = verbs.add_parser(
        "run", parents=[common, queued, creation, remote, installing, training],
        help="create, set up and train; after a preemption recreate and train again",
    )
    run.add_argument("--max-restarts", type=int, default=10,
                     help="preemptions (and failed creates) to recover from (default 10)")
    run.add_argument("--poll-seconds", type=float, default=60.0,
                     help="wait between looks at a TPU that is not ready yet (default 60)")
    run.add_argument("--max-wait-hours", type=float, default=24.0,
                     help="give up when a TPU is not ready after this long (default 24)")
    return parser


def commands_for(args: argparse.Namespace, extra_args: Sequence[str]) -> list[list[str]]:
    """Maps parsed arguments onto the command builders."""
    target = Target(args.name, args.zone, args.project)
    if args.verb == "create":
        return tpu_commands.create_commands(
            target,
            accelerator_type=args.accelerator_type,
            runtime_version=args.runtime_version,
            spot=args.spot,
            preemptible=args.preemptible,
            queued=args.queued,
            queued_resource_id=args.queued_resource_id,
        )
    if args.verb == "setup":
        return _setup(target, args)
    if args.verb == "train":
        return tpu_commands.train_commands(
            target,
            config=args.config,
            workdir=args.workdir,
            extra_args=extra_args,
            env=_env_pairs(args.env),
            remote_dir=args.remote_dir,
            log_file=args.log_file,
            worker=args.worker,
        )
    if args.verb == "logs":
        return tpu_commands.logs_commands(
            target,
            remote_dir=args.remote_dir,
            log_file=args.log_file,
            lines=args.lines,
            follow=args.follow,
            worker=args.worker,
            fetch_to=args.fetch_to,
            num_workers=args.num_workers,
        )
    if args.verb == "kill":
        return tpu_commands.kill_commands(target, remote_dir=args.remote_dir)
    if args.verb == "stop":
        return tpu_commands.stop_commands(target)
    if args.verb == "delete":
        return tpu_commands.delete_commands(
            target, queued=args.queued, queued_resource_id=args.queued_resource_id
        )
    raise AssertionError(f"unhandled verb {args.verb}")


def _setup(target: Target, args: argparse.Namespace) -> list[list[str]]:
    tarball = os.path.join(tempfile.gettempdir(), f"vision_jax-{args.name}.tar.gz")
    return tpu_commands.setup_commands(
        target,
        source_dir=args.source,
        tarball=tarball,
        remote_dir=args.remote_dir,
        python_version=args.python,
        jax_version=args.jax_version,
    )


def run_plan(args: argparse.Namespace, extra_args: Sequence[str]) -> tpu_run.RunPlan:
    """The commands `run` chooses between: create, delete, setup and foreground training."""
    target = Target(args.name, args.zone, args.project)
    create = tpu_commands.create_commands(
        target,
        accelerator_type=args.accelerator_type,
        runtime_version=args.runtime_version,
        spot=args.spot,
        preemptible=args.preemptible,
        queued=args.queued,
        queued_resource_id=args.queued_resource_id,
    )
    train = tpu_commands.run_train_commands(
        target,
        config=args.config,
        workdir=args.workdir,
        extra_args=extra_args,
        env=_env_pairs(args.env),
        remote_dir=args.remote_dir,
        log_file=args.log_file,
    )
    return tpu_run.RunPlan.build(target, queued=args.queued,
                                 queued_resource_id=args.queued_resource_id,
                                 create=create, setup=_setup(target, args), train=train)


def shared_storage_warning(verb: str, workdir: str, accelerator_type: str | None) -> str | None:
    """Why a local --workdir will not do, or None. The trainer cannot tell a pod slice's
    hosts apart from separate runs, so the launcher, which knows, says it."""
    if workdir.startswith("gs://"):
        return None
    if verb == "run":
        if accelerator_type and tpu_types.is_multi_host(accelerator_type):
            return (f"--workdir {workdir!r} is not gs://: a {accelerator_type} has several "
                    "hosts, which must write one checkpoint to shared storage, and a "
                    "recreated slice can resume only from storage that outlives it; use "
                    "--workdir gs://BUCKET/PATH")
        return (f"--workdir {workdir!r} is not gs://: it lives on the VM's disk, which a "
                "preemption deletes, so the recreated VM starts from step 0; use "
                "--workdir gs://BUCKET/PATH")
    return (f"--workdir {workdir!r} is not gs://: fine on one host (v4-8), but a pod slice's "
            "hosts (v4-16 and up) need shared storage for the checkpoint they write together; "
            "use --workdir gs://BUCKET/PATH")


def run_commands(commands: Sequence[Sequence[str]]) -> int:
    """Runs the commands in order, stopping at the first failure."""
    if shutil.which("gcloud") is None:
        print(
            f"{_PROG}: gcloud is not installed or not on PATH; install the Google Cloud CLI "
            "(https://cloud.google.com/sdk/docs/install) or add --dry-run to print the commands",
            file=sys.stderr,
        )
        return 2
    for command in commands:
        print(f"+ {shlex.join(command)}", file=sys.stderr, flush=True)
        try:
            subprocess.run(list(command), check=True)
        except subprocess.CalledProcessError as error:
            print(f"{_PROG}: command failed with exit code {error.returncode}: "
                  f"{shlex.join(command)}", file=sys.stderr)
            return error.returncode or 1
        except KeyboardInterrupt:
            return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after '--' goes to vision_jax.train unchanged (e.g. --config.batch_size=512).
    split = argv.index("--") if "--" in argv else len(argv)
    parser = build_parser()
    args = parser.parse_args(argv[:split])
    extra_args = argv[split + 1 :]
    if extra_args and args.verb not in ("train", "run"):
        parser.error(f"arguments after '--' are only for 'train' and 'run', not '{args.verb}'")
    try:
        if args.verb == "run":
            loop = tpu_run.Loop(run_plan(args, extra_args), max_restarts=args.max_restarts,
                                poll_seconds=args.poll_seconds,
                                max_wait_seconds=args.max_wait_hours * 3600.0)
            commands = loop.plan.dry_run_lines(args.max_restarts, args.poll_seconds)
        else:
            commands = [shlex.join(command) for command in commands_for(args, extra_args)]
    except ValueError as error:
        parser.error(str(error))
    if args.verb in ("train", "run"):
        warning = shared_storage_warning(args.verb, args.workdir,
                                         getattr(args, "accelerator_type", None))
        if warning:
            print(f"{_PROG}: warning: {warning}", file=sys.stderr)
    if args.dry_run:
        print("\n".join(commands))
        return 0
    if args.verb == "run":
        return _run_loop(loop)
    return run_commands(commands_for(args, extra_args))


def _run_loop(loop: tpu_run.Loop) -> int:
    if shutil.which("gcloud") is None:
        print(f"{_PROG}: gcloud is not installed or not on PATH; install the Google Cloud CLI "
              "or add --dry-run to print the commands", file=sys.stderr)
        return 2
    try:
        return loop.run()
    except tpu_run.RunError as error:
        print(f"{_PROG}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted; the TPU is left as it is (delete it with: {_PROG} "
              "delete ...)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The gcloud commands launch.tpu_vm builds, fed to the real Google Cloud CLI's own argument
parser: a misspelt flag or verb fails there with exit code 2, a well-formed command gets as
far as asking for an account (exit 1), since the throwaway config has none. Skipped where
gcloud is not installed; slow (seconds per gcloud start)."""

import os
import shutil
import subprocess

import pytest

from launch import tpu_commands
from launch.tpu_commands import Target

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud is not installed"),
]
TARGET = Target("vj-v4-32", "us-central2-b", "my-project")


def _commands() -> list[list[str]]:
    queued = {"queued": True, "queued_resource_id": None}
    [ssh_run] = tpu_commands.run_train_commands(TARGET, config="configs/mnist_cnn.py",
                                                workdir="gs://b/x", env={"A": "1"})
    _tar, scp, *_ = tpu_commands.setup_commands(TARGET, source_dir=".", tarball="/tmp/x.tgz")
    return [
        tpu_commands.describe_command(TARGET),
        tpu_commands.describe_command(TARGET, **queued),
        *tpu_commands.create_commands(TARGET, accelerator_type="v5litepod-16", spot=True),
        *tpu_commands.create_commands(TARGET, accelerator_type="v4-32", spot=True, **queued),
        *tpu_commands.delete_commands(TARGET),
        *tpu_commands.delete_commands(TARGET, **queued),
        scp,
        ssh_run,
    ]


@pytest.mark.parametrize("command", _commands(), ids=lambda c: " ".join(c[3:5]))
def test_gcloud_accepts_the_command(command, tmp_path):
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
           "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 1, result.stderr
    assert "active account" in result.stderr, result.stderr


def test_gcloud_rejects_a_misspelt_flag(tmp_path):
    """The check above could fail: gcloud parses before it asks for an account."""
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    command = [*tpu_commands.describe_command(TARGET), "--spott"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr

"""What a Cloud TPU accelerator type name (`v4-8`, `v5litepod-16`, `v6e-8`) implies: its
generation, the runtime (software) image that generation boots, and whether the slice has
more than one host.

Each generation needs its own runtime image: a v5e created with the v4 image does not see
its chips. The table follows Google's "TPU software versions" page,
https://cloud.google.com/tpu/docs/runtimes ("PyTorch and JAX": Trillium (v6e)
v2-alpha-tpuv6e, v5p v2-alpha-tpuv5, v5e v2-alpha-tpuv5-lite, v4 and older
tpu-ubuntu2204-base).
"""

from __future__ import annotations

import re

# Generation prefix of the accelerator type -> runtime version for JAX on that generation.
RUNTIME_VERSIONS = {
    "v2": "tpu-ubuntu2204-base",
    "v3": "tpu-ubuntu2204-base",
    "v4": "tpu-ubuntu2204-base",
    "v5litepod": "v2-alpha-tpuv5-lite",  # v5e
    "v5p": "v2-alpha-tpuv5",
    "v6e": "v2-alpha-tpuv6e",  # Trillium
}
# A TPU VM host holds at most 8 of whatever the type name counts (TensorCores for v2-v4 and
# v5p, chips for v5e and v6e), so a number above 8 always means a multi-host slice.
_MAX_PER_HOST = 8
_ACCELERATOR = re.compile(r"^(v\d+[a-z]*)-(\d+)$")


def _parse(accelerator_type: str) -> tuple[str, int]:
    match = _ACCELERATOR.match(accelerator_type)
    if not match:
        raise ValueError(
            f"--accelerator-type {accelerator_type!r} must look like 'v4-8', 'v4-32', "
            "'v5litepod-16' or 'v6e-8'"
        )
    return match.group(1), int(match.group(2))


def generation(accelerator_type: str) -> str:
    """`v4-32` -> `v4`; `v5litepod-16` -> `v5litepod`."""
    return _parse(accelerator_type)[0]


def runtime_version(accelerator_type: str, explicit: str | None = None) -> str:
    """The runtime image to create the TPU with: `explicit` when given (it wins, also for a
    generation this table does not know yet), else the generation's own image."""
    prefix = generation(accelerator_type)
    if explicit:
        return explicit
    if prefix not in RUNTIME_VERSIONS:
        raise ValueError(
            f"--accelerator-type {accelerator_type!r}: unknown TPU generation {prefix!r}; "
            f"known: {', '.join(RUNTIME_VERSIONS)} (v5litepod is v5e), or pass --runtime-version"
        )
    return RUNTIME_VERSIONS[prefix]


def is_multi_host(accelerator_type: str) -> bool:
    """True for a pod slice (v4-16 and up, v5litepod-16 and up, ...): several VMs, one
    process each, which must share their workdir."""
    return _parse(accelerator_type)[1] > _MAX_PER_HOST

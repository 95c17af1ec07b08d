"""The device mesh and the shardings that go with it.

The model never sees the device count: the batch is one global array split
over the mesh's batch axes, and parameters are replicated unless the `fsdp`
axis is larger than one.
"""

from __future__ import annotations

import math

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES = ("data", "fsdp")
# The batch is split over every data-parallel axis: with FSDP each device
# still sees its own slice of the batch.
BATCH_AXES = ("data", "fsdp")


def mesh_shape(mesh_config: ml_collections.ConfigDict, device_count: int) -> dict[str, int]:
    """Resolves -1 entries and checks the axis sizes multiply to `device_count`."""
    sizes = {axis: int(mesh_config[axis]) for axis in MESH_AXES}
    unknown = [a for a, s in sizes.items() if s == -1]
    if len(unknown) > 1:
        raise ValueError(f"config.mesh: only one axis may be -1, got {dict(sizes)}")
    if any(s == 0 or s < -1 for s in sizes.values()):
        raise ValueError(f"config.mesh: axis sizes must be positive or -1, got {dict(sizes)}")
    known = math.prod(s for s in sizes.values() if s != -1)
    if unknown:
        if device_count % known:
            raise ValueError(
                f"config.mesh={dict(sizes)}: {device_count} devices do not divide by {known}; "
                f"choose axis sizes that divide {device_count}")
        sizes[unknown[0]] = device_count // known
    if math.prod(sizes.values()) != device_count:
        raise ValueError(
            f"config.mesh={dict(sizes)} multiplies to {math.prod(sizes.values())} but there are "
            f"{device_count} devices; set config.mesh.data=-1 to use them all")
    return sizes


def make_mesh(mesh_config: ml_collections.ConfigDict, devices=None) -> Mesh:
    devices = jax.devices() if devices is None else devices
    sizes = mesh_shape(mesh_config, len(devices))
    grid = np.asarray(devices).reshape(tuple(sizes[a] for a in MESH_AXES))
    return Mesh(grid, MESH_AXES)


def data_parallel_size(mesh_config: ml_collections.ConfigDict, device_count: int) -> int:
    sizes = mesh_shape(mesh_config, device_count)
    return math.prod(sizes[a] for a in BATCH_AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over the data-parallel axes."""
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())

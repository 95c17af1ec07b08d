"""kernels.json: the implementation impl="auto" chose for each layer, recorded at trace time."""

from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from vision_jax import ops
from vision_jax.ops import auto_table, kernel_choices
from vision_jax.ops.conv_auto import conv_signature


class TwoLayers(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(4, (3, 3), name="stem")(x)  # flax's own conv: not ours, not recorded
        kernel = self.param("kernel", nn.initializers.ones, (3, 3, 4, 8))
        x = ops.conv2d(x, kernel, impl="auto")
        return ops.max_pool(x, (2, 2), impl="auto")


@pytest.fixture
def kernels_json(tmp_path):
    path = tmp_path / "kernels.json"
    kernel_choices.record_kernel_choices(path)
    yield path
    kernel_choices.stop_recording()


def test_choices_are_written_when_a_trace_ends_with_layer_names(kernels_json):
    x = jnp.ones((2, 8, 8, 3))
    model = TwoLayers()
    variables = jax.jit(model.init)(jax.random.key(0), x)
    assert kernels_json.exists()  # written by the end of the init trace, before any compile
    document = json.loads(kernels_json.read_text())
    assert document["backend"] == jax.default_backend()
    by_op = {entry["op"]: entry for entry in document["choices"]}
    assert set(by_op) == {"conv2d", "max_pool"}
    conv = by_op["conv2d"]
    assert conv["layer"] == "TwoLayers"
    assert conv["signature"] == conv_signature((2, 8, 8, 4), (3, 3, 4, 8))
    assert conv["impl"] in ops.kernels.implementations("conv2d")
    assert conv["source"] in ("table", "default")
    # A second trace of the same shapes adds nothing; a new batch size adds its own entries.
    jax.jit(model.apply)(variables, x)
    assert len(json.loads(kernels_json.read_text())["choices"]) == 2
    jax.jit(model.apply)(variables, jnp.ones((4, 8, 8, 3)))
    assert len(json.loads(kernels_json.read_text())["choices"]) == 4


def test_a_table_choice_is_recorded_as_such(kernels_json, tmp_path, monkeypatch):
    x, kernel = jnp.ones((2, 6, 6, 3)), jnp.ones((3, 3, 3, 4))
    table = tmp_path / "auto_table.json"
    signature = conv_signature(x.shape, kernel.shape)
    table.write_text(json.dumps([{"backend": jax.default_backend(), "op": "conv2d",
                                  "signature": signature, "best_impl": "shifted_sum"}]))
    monkeypatch.setattr(auto_table, "TABLE", table)
    jax.jit(lambda a, b: ops.conv2d(a, b))(x, kernel)
    [entry] = json.loads(kernels_json.read_text())["choices"]
    assert (entry["impl"], entry["source"], entry["signature"]) == (
        "shifted_sum", "table", signature)


def test_only_the_writing_process_writes(tmp_path):
    path = tmp_path / "kernels.json"
    kernel_choices.record_kernel_choices(path, write=False)
    jax.jit(lambda a: ops.max_pool(a, (2, 2)))(jnp.ones((1, 4, 4, 1)))
    assert not path.exists()
    assert [entry["op"] for entry in kernel_choices.recorded()] == ["max_pool"]
    kernel_choices.stop_recording()


def test_nothing_is_recorded_after_the_run_stops_recording(kernels_json):
    jax.jit(lambda a: ops.max_pool(a, (2, 2)))(jnp.ones((1, 4, 4, 1)))
    kernel_choices.stop_recording()
    written = kernels_json.read_text()
    jax.jit(lambda a: ops.max_pool(a, (2, 2)))(jnp.ones((2, 4, 4, 1)))
    assert kernel_choices.recorded() == [] and kernels_json.read_text() == written


def test_the_shipped_table_is_package_data_and_has_cpu_conv_records():
    records = auto_table.read_records()
    assert auto_table.source_path().name == "auto_table.json"
    assert any(r["backend"] == "cpu" and r.get("op", "conv2d") == "conv2d" for r in records)

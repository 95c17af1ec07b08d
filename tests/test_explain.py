"""Looking inside a network: layer reading, Grad-CAM, saliency, gradient ascent, Deep Dream,
and every `python -m vision_jax.explain` verb on a smoke-trained workdir."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from train_cli import REPO, cpu_env, run_train

from vision_jax import models
from vision_jax.data.builtin.shapes_classification import generate_example
from vision_jax.explain import gradcam, layers
from vision_jax.explain.__main__ import main as explain_main
from vision_jax.summary import summarize
from vision_jax.viz.cam import class_activation_map

SMALL_MODELS = {  # name -> (kwargs, input shape)
    "seed_cnn": ({}, (28, 28, 1)),
    "resnet18": ({"stem": "cifar", "width": 8}, (32, 32, 3)),
    "vgg11": ({}, (32, 32, 3)),
}


@functools.cache
def _init(name):
    """(model, variables, input shape), made once per test process: unjitted, ResNet-18's
    init dispatches op by op and took 35 s here, jitted 17 s (most of it compiling the
    random draws)."""
    kwargs, shape = SMALL_MODELS[name]
    model = models.create(name, num_classes=3, **kwargs)
    return model, _variables(model, (1, *shape)), shape


def _variables(model, shape):
    """`model`'s variables for inputs of `shape`, initialised under jit."""
    return jax.jit(functools.partial(model.init, train=False))(jax.random.key(0),
                                                                jnp.zeros(shape))


@pytest.mark.parametrize("name", sorted(SMALL_MODELS))
def test_layers_are_read_by_the_names_summary_prints(name):
    model, variables, shape = _init(name)
    images = jax.random.normal(jax.random.key(1), (3, *shape))
    read = jax.jit(lambda v, x: layers.read_layers(model, v, x))(variables, images)
    kwargs = SMALL_MODELS[name][0]
    printed = summarize(name, num_classes=3, image_size=shape[0], channels=shape[2], **kwargs)
    summary_names = [row["name"] for row in printed["layers"]]
    assert summary_names == list(layers.layer_shapes(model, variables, (3, *shape)))
    assert set(read) == set(summary_names)
    for row in printed["layers"]:
        assert list(read[row["name"]].shape) == [3, *row["shape"]]
    # Batched and jitted reads equal one image at a time.
    single = layers.read_layers(model, variables, images[1:2])
    for layer_name, value in single.items():
        np.testing.assert_allclose(read[layer_name][1:2], value, rtol=1e-4, atol=1e-4)


def test_last_spatial_layer_defaults():
    assert layers.last_spatial_layer(*_init("seed_cnn")[:2], (1, 28, 28, 1)) == "conv3"
    assert layers.last_spatial_layer(*_init("resnet18")[:2], (1, 32, 32, 3)) == "stage4_block2"


def test_layer_output_stops_at_the_layer_so_other_sizes_work():
    model, variables, _ = _init("seed_cnn")  # its dense layer needs 28x28
    out = layers.layer_output(model, variables, jnp.ones((2, 40, 40, 1)), "conv2")
    assert out.shape == (2, 17, 17, 64)  # 40 -> 38 -> 19 -> 17


def test_grad_cam_equals_cam_up_to_a_positive_scale_for_gap_dense():
    model, variables, shape = _init("resnet18")  # global average pool, then one dense layer
    images = jax.random.normal(jax.random.key(2), (2, *shape))
    classes = jnp.array([2, 0], jnp.int32)
    cams, _, chosen = gradcam.grad_cam_fn(model, "stage4_block2", relu=False)(
        variables, images, classes)
    features = layers.layer_output(model, variables, images, "stage4_block2")
    kernel = variables["params"]["classifier"]["kernel"]
    for index in range(2):
        raw = np.einsum("hwc,c->hw", features[index], kernel[:, int(chosen[index])])
        height, width = raw.shape
        np.testing.assert_allclose(np.asarray(cams[index]) * height * width, raw,
                                   rtol=1e-3, atol=1e-4)
        # Also against viz.cam's CAM (min-max scaled): the same map after scaling.
        reference = class_activation_map(features[index], kernel, int(chosen[index]))
        mine = np.asarray(cams[index])
        mine = (mine - mine.min()) / (mine.max() - mine.min())
        np.testing.assert_allclose(mine, reference, atol=1e-4)


def test_gradcam_maps_cells_onto_the_pixels_they_see():
    # seed_cnn's VALID convs: conv3 is 8x8 on 48x48, but its cells are 4 pixels apart and see
    # the central 46 pixels; stretching the map over the whole image misplaces them.
    model = models.create("seed_cnn", num_classes=3)
    variables = _variables(model, (1, 48, 48, 3))
    assert layers.layer_stride(model, variables, "conv3", (1, 48, 48, 3)) == (4.0, 4.0)
    images = jax.random.normal(jax.random.key(3), (4, 48, 48, 3))
    grad = jax.grad(lambda x: layers.layer_output(model, variables, x, "conv3")[:, 2, 5].sum())(
        images)
    seen = np.abs(np.asarray(grad)).sum(axis=(0, 3)) > 0  # the receptive field of cell (2, 5)
    rows, cols = np.nonzero(seen.any(axis=1))[0], np.nonzero(seen.any(axis=0))[0]
    centre = np.array([(rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2])
    one_hot = jnp.zeros((1, 8, 8)).at[0, 2, 5].set(1.0)

    def peak(heatmap):
        return np.array(np.unravel_index(int(np.argmax(heatmap[0])), (48, 48)))

    assert np.all(np.abs(peak(gradcam.upsample(one_hot, (48, 48), (4.0, 4.0))) - centre) <= 1)
    assert np.abs(peak(gradcam.upsample(one_hot, (48, 48))) - centre).max() > 2
    # An outer cell's peak is its centre (10 pixels in), not the border its value is held to.
    corner = jnp.zeros((1, 8, 8)).at[0, 0, 7].set(1.0)
    np.testing.assert_allclose(gradcam.peak_points(corner, (4.0, 4.0), (48, 48)),
                               [[10 / 48, 38 / 48]])
    # A SAME-padded map is spread over the whole image either way.
    resnet, resnet_vars, _ = _init("resnet18")
    assert layers.layer_stride(resnet, resnet_vars, "stage4_block2", (1, 32, 32, 3)) == (8, 8)


def _field_centre(model, variables, layer, shape, cell):
    """The centre (continuous pixels) of ``cell``'s receptive field: its input gradient's
    support on random images."""
    images = jax.random.normal(jax.random.key(3), (4, *shape))
    grad = jax.grad(lambda x: layers.layer_output(model, variables, x, layer)[
        :, cell[0], cell[1]].sum())(images)
    seen = np.abs(np.asarray(grad)).sum(axis=(0, 3)) > 0
    rows, cols = np.nonzero(seen.any(axis=1))[0], np.nonzero(seen.any(axis=0))[0]
    return np.array([(rows.min() + rows.max() + 1) / 2, (cols.min() + cols.max() + 1) / 2])


def test_a_single_hot_cell_peaks_at_the_centre_of_what_it_sees():
    # seed_cnn: VALID convs and floor-rounding pools; conv3 cell k sees pixels [4k, 4k + 18).
    model = models.create("seed_cnn", num_classes=3)
    variables = _variables(model, (1, 48, 48, 3))
    shape = (1, 48, 48, 3)
    stride = layers.layer_stride(model, variables, "conv3", shape)
    origin = layers.layer_origin(model, variables, "conv3", shape, stride)
    assert stride == (4.0, 4.0) and origin == (9.0, 9.0)
    one_hot = jnp.zeros((1, 8, 8)).at[0, 2, 5].set(1.0)
    centre = _field_centre(model, variables, "conv3", (48, 48, 3), (2, 5))
    np.testing.assert_allclose(centre, [17.0, 29.0])
    np.testing.assert_allclose(gradcam.peak_points(one_hot, stride, (48, 48), origin)[0],
                               centre / 48)
    heatmap = np.asarray(gradcam.upsample(one_hot, (48, 48), stride, origin))[0]
    assert np.unravel_index(int(np.argmax(heatmap)), (48, 48)) == (16, 28)  # pixel [16, 17)


class _GlobalPool(nn.Module):
    def __call__(self, x):
        return x.mean(axis=(1, 2), keepdims=True)  # a 1x1 map whatever the input size


class _ConvGlobalPool(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        x = _GlobalPool(name="pool")(nn.Conv(4, (3, 3), name="conv")(x))
        return nn.Dense(2, name="head")(x.reshape(x.shape[0], -1))


def test_a_map_that_does_not_grow_with_the_input_is_centred_on_the_image():
    # A global pool's one cell sees the whole image, at any size; its centre is the image's
    # (growing the input to measure it put it at pixel 72 of a 16-pixel image).
    model = _ConvGlobalPool()
    shape = (1, 16, 16, 3)
    variables = model.init(jax.random.key(0), jnp.zeros(shape))
    stride = layers.layer_stride(model, variables, "pool", shape)
    assert stride == (16.0, 16.0)
    assert layers.layer_origin(model, variables, "pool", shape, stride) == (8.0, 8.0)
    np.testing.assert_allclose(
        gradcam.peak_points(jnp.ones((1, 1, 1)), stride, (16, 16),
                            layers.layer_origin(model, variables, "pool", shape, stride))[0],
        [0.5, 0.5])


# The measurement grows the input until a stage-4 field fits (up to 16x, unjitted gradients
# of a ResNet): minutes on 2 cores, so it runs before a stop, not in CI.
@pytest.mark.slow
def test_a_resnet_stage_cell_is_placed_where_its_field_is_centred():
    # ResNet-18 (CIFAR stem, symmetric padding): stage4 cell k is centred on pixel 8k, 3.5
    # pixels up-left of a grid centred on the 48-pixel image; a cell's field is wider than
    # the image, so it is measured on a larger input.
    resnet, resnet_vars, _ = _init("resnet18")
    shape = (1, 48, 48, 3)
    stride = layers.layer_stride(resnet, resnet_vars, "stage4_block2", shape)
    assert stride == (8.0, 8.0)
    assert layers.layer_origin(resnet, resnet_vars, "stage4_block2", shape, stride) == \
        (0.5, 0.5)
    corner = jnp.zeros((1, 6, 6)).at[0, 0, 5].set(1.0)
    np.testing.assert_allclose(gradcam.peak_points(corner, stride, (48, 48), (0.5, 0.5))[0],
                               [0.5 / 48, 40.5 / 48])


def test_peak_in_box():
    maps = np.zeros((2, 10, 10))
    maps[0, 2, 3] = 1.0  # pixel centre (0.25, 0.35)
    maps[1, 9, 9] = 1.0
    boxes = np.array([[0.2, 0.3, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]])
    assert gradcam.peak_in_box(maps, boxes).tolist() == [True, False]


# --- on a smoke-trained workdir -------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    run_train(root / "run", f"--config.data_dir={root / 'tfds'}",
              config="configs/shapes_classification.py:seed_cnn,smoke")
    images = []
    for index in range(3):
        path = root / f"shape{index}.png"
        Image.fromarray(generate_example("test", index)["image"]).save(path)
        images.append(str(path))
    return str(root / "run"), images


def _assert_real_png(path, size=None):
    pixels = np.asarray(Image.open(path))
    assert pixels.std() > 1.0, f"{path} is constant"
    if size is not None:
        assert pixels.shape[:2] == size, path
    return pixels


def test_every_verb_writes_real_pngs(trained, tmp_path):
    run_dir, images = trained
    out = tmp_path

    def explain(verb, *args):
        assert explain_main([verb, "--workdir", run_dir, "--out", str(out / verb), *args]) == 0
        return json.loads((out / verb / f"{verb}.json").read_text())

    record = explain("activations", "--images", *images)
    assert list(record["layers"]) == ["conv1", "pool1", "conv2", "pool2", "conv3"]
    for name in record["layers"]:
        _assert_real_png(out / "activations" / f"shape0_{name}.png")
    # Pooled outputs come after a ReLU: their zeros are the ReLU's.
    pool = record["layers"]["pool2"]
    assert pool["zero_fraction"] == pytest.approx(pool["nonpositive_fraction"])

    # Gradient ascent raises each live channel's mean at least tenfold over the start noise.
    record = explain("filters", "--layer", "pool2", "--channels", "0,1,2,3,4,5", "--steps", "60")
    start, end = np.array(record["start_mean"]), np.array(record["end_mean"])
    alive = start > 0
    assert alive.sum() >= 3
    assert np.all(end[alive] >= 10 * start[alive]), record
    for channel in range(6):
        _assert_real_png(out / "filters" / f"pool2_channel{channel}.png", (48, 48))
    _assert_real_png(out / "filters" / "pool2.png")

    # The mosaic's record is its own file: the ascent's stays as it was.
    assert explain("filters", "--weights", "--layer", "conv1") == record
    weights = json.loads((out / "filters" / "weights.json").read_text())
    assert weights == {"layer": "conv1", "kernel_shape": [3, 3, 3, 32]}
    _assert_real_png(out / "filters" / "conv1_weights.png")

    # Deep Dream's objective climbs over its steps, at every octave.
    record = explain("dream", "--image", images[0], "--layer", "conv3", "--channels", "1,2",
                     "--steps", "8", "--octaves", "2")
    assert len(record["objective"]) == 2
    for values in record["objective"]:
        assert len(values) == 9 and values[-1] > values[0]
        assert np.mean(np.diff(values) > 0) > 0.8  # it climbs at (nearly) every step
    _assert_real_png(out / "dream" / "shape0_dream.png", (48, 48))

    record = explain("gradcam", "--images", *images)
    assert record["layer"] == "conv3" and len(record["images"]) == 3
    for index in range(3):
        _assert_real_png(out / "gradcam" / f"shape{index}_gradcam.png", (48, 48))

    record = explain("saliency", "--images", images[0], "--samples", "4")
    pixels = _assert_real_png(out / "saliency" / "shape0_saliency.png")
    assert pixels.shape[:2] == (48, 3 * 48 + 4)  # image | gradient | SmoothGrad


def test_bad_layer_is_one_line(trained, capsys):
    code = explain_main(["gradcam", "--workdir", trained[0], "--images", trained[1][0],
                         "--layer", "conv4"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --layer 'conv4'") and "conv3" in err and "\n" not in err


def test_cli_runs_as_a_module(trained, tmp_path):
    result = subprocess.run([sys.executable, "-m", "vision_jax.explain", "gradcam",
                             "--workdir", trained[0], "--images", trained[1][1],
                             "--layer", "pool1", "--class", "2", "--out", str(tmp_path)],
                            cwd=REPO, env=cpu_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    _assert_real_png(tmp_path / "shape1_gradcam.png", (48, 48))
    record = json.loads((tmp_path / "gradcam.json").read_text())
    assert record["layer"] == "pool1" and record["images"][0]["class"] == 2

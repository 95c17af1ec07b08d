"""Classification model zoo: parameter counts against the papers, shapes, dtypes, BN, dropout.

Full-size (224x224) models are only ever traced with `jax.eval_shape`; real arrays are used on
tiny variants only, so this file stays fast on a CPU.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from vision_jax import models

# ---------------------------------------------------------------------------------------------
# Independent reference arithmetic, from the papers' layer tables.


def conv_params(k: int, c_in: int, c_out: int, bias: bool) -> int:
    return k * k * c_in * c_out + (c_out if bias else 0)


def bn_params(channels: int) -> int:
    return 2 * channels  # scale and offset; the running mean/var are not parameters


def dense_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


# Simonyan & Zisserman (2015), Table 1, configurations A, B, D, E ("M" = max-pool).
VGG_TABLE_1 = {
    "vgg11": "64 M 128 M 256 256 M 512 512 M 512 512 M",
    "vgg13": "64 64 M 128 128 M 256 256 M 512 512 M 512 512 M",
    "vgg16": "64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M",
    "vgg19": "64 64 M 128 128 M 256 256 256 256 M 512 512 512 512 M 512 512 512 512 M",
}

# He et al. (2015), Table 1: block type and number of blocks in conv2_x .. conv5_x.
RESNET_TABLE_1 = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}

# The published parameter counts of the reference implementations (torchvision model docs;
# Keras "Deep Learning with Python" 2nd ed. listing 8.1 for the MNIST convnet). They only check
# the arithmetic below; the models are compared with the arithmetic.
PUBLISHED_PARAMS = {
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "resnet101": 44_549_160, "resnet152": 60_192_808,
}


def vgg_reference_params(layout: str, batch_norm: bool, classifier_inputs: int,
                         num_classes: int = 1000, hidden: int = 4096) -> int:
    total, channels = 0, 3
    for token in layout.split():
        if token == "M":
            continue
        # torchvision's vgg*_bn keep the conv bias in front of the BN.
        total += conv_params(3, channels, int(token), bias=True)
        total += bn_params(int(token)) if batch_norm else 0
        channels = int(token)
    return (total + dense_params(classifier_inputs, hidden) + dense_params(hidden, hidden)
            + dense_params(hidden, num_classes))


def resnet_reference_params(block: str, stages: tuple[int, ...], num_classes: int = 1000) -> int:
    total = conv_params(7, 3, 64, bias=False) + bn_params(64)
    channels = 64
    for stage, blocks in enumerate(stages):
        width = 64 * 2**stage
        for index in range(blocks):
            if block == "basic":
                out = width
                total += conv_params(3, channels, width, False) + bn_params(width)
                total += conv_params(3, width, width, False) + bn_params(width)
            else:
                out = 4 * width
                total += conv_params(1, channels, width, False) + bn_params(width)
                total += conv_params(3, width, width, False) + bn_params(width)
                total += conv_params(1, width, out, False) + bn_params(out)
            if channels != out or (stage > 0 and index == 0):  # projection shortcut
                total += conv_params(1, channels, out, False) + bn_params(out)
            channels = out
    return total + dense_params(channels, num_classes)


def seed_cnn_reference_params(num_classes: int) -> int:
    # 28 -conv3-> 26 -pool-> 13 -conv3-> 11 -pool-> 5 -conv3-> 3: the dense layer sees 3*3*128.
    return (conv_params(3, 1, 32, True) + conv_params(3, 32, 64, True)
            + conv_params(3, 64, 128, True) + dense_params(3 * 3 * 128, num_classes))


def reference_params(name: str) -> int:
    if name.startswith("vgg"):
        return vgg_reference_params(VGG_TABLE_1[name.removesuffix("_bn")], name.endswith("_bn"),
                                    classifier_inputs=7 * 7 * 512)
    return resnet_reference_params(*RESNET_TABLE_1[name])


# ---------------------------------------------------------------------------------------------
# Helpers


def abstract_variables(model, shape, dtype=jnp.float32):
    """Variables as ShapeDtypeStructs: tracing only, no compute and no memory."""
    images = jax.ShapeDtypeStruct(shape, dtype)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), images)


def count(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def numpy_variables(model, images):
    """Variables of the right structure filled from NumPy (He-normal kernels, BN at rest).

    XLA on CPU takes seconds to compile each random initialiser (threefry + erf_inv), so the
    tests that need real numbers but do not test the initialisers build them this way.
    """
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name = path[-1].key
        if name in ("scale", "var"):
            return jnp.ones(leaf.shape, leaf.dtype)
        if name in ("bias", "mean"):
            return jnp.zeros(leaf.shape, leaf.dtype)
        fan_in = int(np.prod(leaf.shape[:-1]))
        return jnp.asarray(rng.normal(0, np.sqrt(2 / fan_in), leaf.shape), leaf.dtype)

    abstract = abstract_variables(model, images.shape, images.dtype)
    return jax.tree_util.tree_map_with_path(fill, abstract)


def abstract_apply(model, variables, shape, dtype=jnp.float32, **kwargs):
    images = jax.ShapeDtypeStruct(shape, dtype)
    return jax.eval_shape(lambda v, x: model.apply(v, x, **kwargs), variables, images)


FLOAT32 = jnp.dtype(jnp.float32)
CLASSIFIERS = ["seed_cnn", *VGG_TABLE_1, *(f"{n}_bn" for n in VGG_TABLE_1), *RESNET_TABLE_1]


# ---------------------------------------------------------------------------------------------
# Registry


def test_registry_lists_the_classification_zoo():
    assert set(CLASSIFIERS) <= set(models.names())


def test_unknown_model_names_the_config_field():
    with pytest.raises(ValueError, match=r"config\.model_name.*resnet50"):
        models.create("resnet51", num_classes=10)


def test_unknown_argument_is_named():
    with pytest.raises(TypeError, match="resnet18.*num_clases.*accepts num_classes"):
        models.create("resnet18", num_clases=10)
    with pytest.raises(TypeError, match="resnet18.*needs.*num_classes"):
        models.create("resnet18")


# ---------------------------------------------------------------------------------------------
# Parameter counts


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_reference_arithmetic_matches_published_counts(name):
    assert reference_params(name) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_param_count_at_224_equals_the_paper(name):
    variables = abstract_variables(models.create(name, num_classes=1000), (1, 224, 224, 3))
    assert count(variables["params"]) == reference_params(name)
    # Params are kept in float32 whatever the compute dtype.
    assert {leaf.dtype for leaf in jax.tree.leaves(variables["params"])} == {FLOAT32}


def test_seed_cnn_param_count():
    # 104,202 is also what Keras prints for this model (DLwP 2nd ed.). The 93,322 sometimes
    # quoted belongs to the 1st-edition variant (Conv32-Conv64-Conv64, Dense(64), Dense(10)).
    assert seed_cnn_reference_params(10) == 104_202
    variables = abstract_variables(models.create("seed_cnn", num_classes=10), (1, 28, 28, 1))
    assert count(variables["params"]) == seed_cnn_reference_params(10)
    assert "batch_stats" not in variables


def test_vgg_on_cifar_uses_global_pooling_head():
    # The final map at 32x32 is 1x1x512, so the FC stack starts from 512 features.
    model = models.create("vgg11", num_classes=10, hidden_units=512)
    variables = abstract_variables(model, (1, 32, 32, 3))
    expected = vgg_reference_params(VGG_TABLE_1["vgg11"], False, classifier_inputs=512,
                                    num_classes=10, hidden=512)
    assert count(variables["params"]) == expected


def test_batch_norm_models_keep_running_stats():
    variables = abstract_variables(models.create("resnet18", num_classes=10), (1, 32, 32, 3))
    # One mean and one variance per BN channel: the same count as the BN scales and offsets.
    bn_params_total = count([leaf for path, leaf in jax.tree_util.tree_leaves_with_path(
        variables["params"]) if "bn" in jax.tree_util.keystr(path)])
    assert count(variables["batch_stats"]) == bn_params_total > 0


# ---------------------------------------------------------------------------------------------
# Shapes and dtypes (traced only)


def _small_input(name: str) -> tuple[int, ...]:
    return (2, 28, 28, 1) if name == "seed_cnn" else (2, 32, 32, 3)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_forward_shapes_and_dtypes_on_small_inputs(name):
    kwargs = {"stem": "cifar"} if name.startswith("resnet") else {}
    model = models.create(name, num_classes=7, dtype=jnp.bfloat16, **kwargs)
    shape = _small_input(name)
    variables = abstract_variables(model, shape)
    logits, state = abstract_apply(model, variables, shape, train=False,
                                   mutable=["intermediates"])
    chex.assert_shape(logits, (2, 7))
    assert logits.dtype == jnp.float32
    (features,) = state["intermediates"]["features"]
    assert features.dtype == jnp.bfloat16  # activations in the compute dtype
    assert features.ndim == 4 and features.shape[0] == 2
    assert {leaf.dtype for leaf in jax.tree.leaves(variables["params"])} == {FLOAT32}


@pytest.mark.parametrize("name, expected", [("resnet50", (1, 7, 7, 2048)),
                                            ("resnet18", (1, 7, 7, 512)),
                                            ("vgg16", (1, 7, 7, 512)),
                                            ("seed_cnn", (1, 3, 3, 128))])
def test_last_conv_features_are_sown(name, expected):
    model = models.create(name, num_classes=1000)
    shape = (1, 28, 28, 1) if name == "seed_cnn" else (1, 224, 224, 3)
    variables = abstract_variables(model, shape)
    _, state = abstract_apply(model, variables, shape, train=False, mutable=["intermediates"])
    chex.assert_shape(state["intermediates"]["features"][0], expected)


def test_resnet_imagenet_stem_on_small_input():
    model = models.create("resnet18", num_classes=10)
    variables = abstract_variables(model, (2, 64, 64, 3))
    _, state = abstract_apply(model, variables, (2, 64, 64, 3), train=False,
                              mutable=["intermediates"])
    chex.assert_shape(state["intermediates"]["features"][0], (2, 2, 2, 512))  # stride 32


def test_too_small_image_names_the_config_field():
    with pytest.raises(ValueError, match="image_size"):
        abstract_variables(models.create("vgg11", num_classes=10), (1, 16, 16, 3))
    with pytest.raises(ValueError, match="image_size"):
        abstract_variables(models.create("resnet18", num_classes=10), (1, 16, 16, 3))


def test_conv_and_pool_impl_are_routed_to_ops():
    for option in ("conv_impl", "pool_impl"):
        model = models.create("seed_cnn", num_classes=10, **{option: "no_such_kernel"})
        with pytest.raises(ValueError, match="no_such_kernel"):
            abstract_variables(model, (1, 28, 28, 1))


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="stem"):
        abstract_variables(models.create("resnet18", num_classes=10, stem="tiny"), (1, 32, 32, 3))
    with pytest.raises(ValueError, match="head"):
        abstract_variables(models.create("vgg11", num_classes=10, head="mlp"), (1, 32, 32, 3))


# ---------------------------------------------------------------------------------------------
# Real computation, tiny models only


def _tiny_resnet(name: str, **kwargs):
    # Same block code as the full model; narrower and shallower so it runs in milliseconds.
    return models.create(name, num_classes=5, stem="cifar", width=8, stage_sizes=(1, 1),
                         **kwargs)


def test_seed_cnn_forward_backward():
    model = models.create("seed_cnn", num_classes=10)
    images = jax.random.normal(jax.random.key(1), (4, 28, 28, 1))
    labels = jnp.arange(4)
    variables = numpy_variables(model, images)

    def loss_fn(params):
        logits = model.apply({"params": params}, images, train=True)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), labels])

    loss, grads = jax.jit(jax.value_and_grad(loss_fn))(variables["params"])
    chex.assert_tree_all_finite((loss, grads))
    chex.assert_trees_all_equal_shapes(grads, variables["params"])
    assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))
    # Textbook gradient of mean cross-entropy w.r.t. the last bias: mean(softmax - one_hot).
    logits = jax.jit(lambda p: model.apply({"params": p}, images, train=False))(
        variables["params"])
    expected = np.mean(jax.nn.softmax(logits) - np.eye(10)[np.arange(4)], axis=0)
    np.testing.assert_allclose(grads["classifier"]["bias"], expected, rtol=1e-4, atol=1e-6)


def test_batch_norm_statistics_update_only_in_training():
    model = _tiny_resnet("resnet18")
    images = jax.random.normal(jax.random.key(1), (4, 16, 16, 3)) * 2.0 + 0.5
    variables = numpy_variables(model, images)

    @functools.partial(jax.jit, static_argnames="train")
    def apply(variables, train):
        return model.apply(variables, images, train=train, mutable=["batch_stats"])

    logits, updates = apply(variables, train=True)
    chex.assert_shape(logits, (4, 5))
    # Independent reference for the stem BN: the 3x3 stride-1 conv by lax, then the moving
    # average with momentum 0.9 of the (biased) batch moments.
    kernel = variables["params"]["stem_conv"]["kernel"]
    stem = lax.conv_general_dilated(images, kernel, (1, 1), ((1, 1), (1, 1)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))
    stats = updates["batch_stats"]["stem_bn"]
    np.testing.assert_allclose(stats["mean"], 0.1 * np.mean(stem, axis=(0, 1, 2)),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * np.var(stem, axis=(0, 1, 2)),
                               rtol=1e-4, atol=1e-6)
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), variables["batch_stats"],
                           updates["batch_stats"])
    assert all(jax.tree.leaves(changed))

    # Evaluation uses the running averages and leaves them alone.
    before, unchanged = apply(variables, train=False)
    chex.assert_trees_all_equal(unchanged["batch_stats"], variables["batch_stats"])
    after, _ = apply({**variables, **updates}, train=False)
    assert not np.allclose(before, after)


def test_dropout_depends_on_key_and_is_off_in_evaluation():
    model = models.create("seed_cnn", num_classes=10, dropout_rate=0.5)
    images = jax.random.normal(jax.random.key(1), (2, 28, 28, 1))
    variables = numpy_variables(model, images)

    @functools.partial(jax.jit, static_argnames=("net", "train"))
    def apply(net, train, seed):
        return net.apply(variables, images, train=train, rngs={"dropout": jax.random.key(seed)})

    train_a, train_b = apply(model, True, 2), apply(model, True, 3)
    assert not np.allclose(train_a, train_b)

    no_dropout = models.create("seed_cnn", num_classes=10, dropout_rate=0.0)
    reference = apply(no_dropout, False, 0)
    for seed in (2, 3):
        np.testing.assert_allclose(apply(model, False, seed), reference, rtol=1e-6)


@pytest.mark.parametrize("name, last_bn", [("resnet18", "bn2"), ("resnet50", "bn3")])
def test_zero_init_last_bn(name, last_bn):
    images = jnp.zeros((1, 16, 16, 3))
    for zero in (True, False):
        model = _tiny_resnet(name, zero_init_last_bn=zero)
        # Only the BN scales leave the compiled init, so XLA drops the rest of the work.
        scales = jax.jit(lambda key, model=model: {
            path: leaf for path, leaf in _flat(model.init(key, images, train=False)["params"])
            if path.endswith("scale")})(jax.random.key(0))
        blocks = {path.split("/")[0] for path in scales if path.startswith("stage")}
        assert len(blocks) == 2
        for path, scale in scales.items():
            expected = 0.0 if (zero and path.split("/")[1] == last_bn) else 1.0
            np.testing.assert_array_equal(scale, expected, err_msg=path)
        assert f"stage1_block1/{last_bn}/scale" in scales and "stem_bn/scale" in scales


def _flat(tree) -> list[tuple[str, jax.Array]]:
    return [("/".join(key.key for key in path), leaf)
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]

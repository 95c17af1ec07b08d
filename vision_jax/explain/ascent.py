"""Gradient ascent in input space: filter visualisation and Deep Dream.

Filter visualisation finds, for each chosen channel of a layer, the input that maximises the
channel's mean activation, starting from faint noise, with the usual regularisers: a random
jitter (roll) of the image at every step, normalised steps (the gradient divided by its RMS,
so the step size means the same at every layer), and a light blur that keeps the pattern
from turning into high-frequency noise. All channels ascend at once: one ``vmap`` over the
channel indices inside one jitted function.

Deep Dream (Mordvintsev et al., 2015) does the same from a real image, on the mean of several
channels together, over octaves: the image is dreamed at a small scale first, then enlarged,
the detail the shrinking lost is put back, and it is dreamed again, up to full size.

The model runs only up to the layer (`layers.layer_output`), so inputs of any size the layers
up to it accept work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vision_jax.explain import layers

_BLUR = jnp.array([1.0, 2.0, 1.0]) / 4.0


def _blur(images: jax.Array, amount: float) -> jax.Array:
    """Mixes ``amount`` of a 3x3 binomial blur (per channel, edges replicated) into images."""
    padded = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    rows = sum(w * padded[:, i:i + images.shape[1]] for i, w in enumerate(_BLUR))
    blurred = sum(w * rows[:, :, i:i + images.shape[2]] for i, w in enumerate(_BLUR))
    return (1 - amount) * images + amount * blurred


def _channel_mean(model, variables, images, layer, channels) -> jax.Array:
    """Mean over positions (and ``channels``) of the layer's output, per image: (N,)."""
    output = layers.layer_output(model, variables, images, layer).astype(jnp.float32)
    picked = jnp.take(output, channels, axis=-1)
    return picked.mean(axis=tuple(range(1, picked.ndim)))


def filter_ascent_fn(model: nn.Module, layer: str, image_shape: Sequence[int], *,
                     steps: int = 100, step_size: float = 0.05, jitter: int = 2,
                     blur: float = 0.1, init_scale: float = 0.1) -> Callable:
    """A jitted ``(variables, channels (K,) int32, key) -> (images (K, H, W, C), start (K,),
    end (K,))``: for every channel, the input that maximises its mean activation, and that
    mean at the starting noise and at the end. ``image_shape`` is (H, W, C)."""
    height, width, depth = image_shape

    def ascend(variables, channel, key):
        start_key, loop_key = jax.random.split(key)
        start = init_scale * jax.random.normal(start_key, (1, height, width, depth))

        def objective(x):
            return _channel_mean(model, variables, x, layer, channel[None])[0]

        def step(index, x):
            shift = jax.random.randint(jax.random.fold_in(loop_key, index), (2,), -jitter,
                                       jitter + 1)
            moved = jnp.roll(x, (shift[0], shift[1]), axis=(1, 2))
            grad = jnp.roll(jax.grad(objective)(moved), (-shift[0], -shift[1]), axis=(1, 2))
            x = x + step_size * grad / (jnp.sqrt(jnp.mean(grad**2)) + 1e-8)
            return _blur(x, blur)

        final = jax.lax.fori_loop(0, steps, step, start)
        return final[0], objective(start), objective(final)

    def run(variables, channels, key):
        keys = jax.random.split(key, channels.shape[0])
        return jax.vmap(ascend, in_axes=(None, 0, 0))(variables, channels, keys)

    return jax.jit(run)


def sigmoid_display(images: jax.Array) -> jax.Array:
    """The course's display of an ascended input: each image rescaled to mean 0, std 1,
    then a sigmoid, so it lands in (0, 1)."""
    axes = tuple(range(1, images.ndim))
    centred = images - images.mean(axis=axes, keepdims=True)
    return jax.nn.sigmoid(centred / (centred.std(axis=axes, keepdims=True) + 1e-8))


def _dream_steps_fn(model, layer, channels, steps, step_size) -> Callable:
    channels = jnp.asarray(channels, jnp.int32)

    def run(variables, image):
        def objective(x):
            return _channel_mean(model, variables, x, layer, channels)[0]

        def step(x, _):
            value, grad = jax.value_and_grad(objective)(x)
            x = x + step_size * grad / (jnp.mean(jnp.abs(grad)) + 1e-8)
            return x, value

        image, values = jax.lax.scan(step, image, None, length=steps)
        return image, jnp.append(values, objective(image))

    return jax.jit(run)


def deep_dream(model: nn.Module, variables, image: jax.Array, layer: str,
               channels: Sequence[int], *, steps: int = 50, octaves: int = 3,
               octave_scale: float = 1.4, step_size: float = 0.01) -> tuple[jax.Array, list]:
    """Deep Dream of one image (1, H, W, C) in model-input space.

    Returns the dreamed image (same shape) and, per octave, the objective (mean of
    ``channels`` at ``layer``) before each step and after the last: ``steps + 1`` values.
    """
    height, width = image.shape[1:3]
    sizes = [(max(8, round(height / octave_scale**k)), max(8, round(width / octave_scale**k)))
             for k in reversed(range(octaves))]
    run = _dream_steps_fn(model, layer, channels, steps, step_size)
    original = image
    shrunk = jax.image.resize(original, (1, *sizes[0], image.shape[3]), "bilinear")
    dreamed = shrunk
    history = []
    for size in sizes:
        shape = (1, *size, image.shape[3])
        dreamed = jax.image.resize(dreamed, shape, "bilinear")
        # Put back the detail the shrinking lost, so the dream keeps the image's structure.
        if size != sizes[0]:
            same_size = jax.image.resize(original, shape, "bilinear")
            dreamed = dreamed + same_size - jax.image.resize(shrunk, shape, "bilinear")
            shrunk = same_size
        dreamed, values = run(variables, dreamed)
        history.append([float(v) for v in values])
    return dreamed, history

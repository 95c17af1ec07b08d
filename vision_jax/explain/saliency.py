"""Saliency maps: the class score's gradient with respect to the input pixels.

``gradient`` is Simonyan et al. (2014); ``smoothgrad`` (Smilkov et al., 2017) averages that
gradient over noisy copies of the image, which removes most of its speckle. Both show the
largest absolute value over the colour channels, per pixel.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


def saliency_fn(model: nn.Module, samples: int = 0, noise: float = 0.15) -> Callable:
    """A jitted ``(variables, images, classes, key) -> (maps (N, H, W), classes)``.

    ``samples=0``: the plain gradient; else SmoothGrad over that many copies with Gaussian
    noise of std ``noise`` times each image's value range. ``classes`` -1 = predicted.
    """

    def class_gradient(variables, images, classes):
        def score(x):
            logits = model.apply(variables, x, train=False)
            chosen = jnp.where(classes >= 0, classes, jnp.argmax(logits, axis=-1))
            return jnp.sum(jnp.take_along_axis(logits, chosen[:, None], axis=1)), chosen

        return jax.grad(score, has_aux=True)(images)

    def run(variables, images, classes, key):
        grads, chosen = class_gradient(variables, images, classes)
        if samples:
            span = images.max(axis=(1, 2, 3), keepdims=True) - images.min(axis=(1, 2, 3),
                                                                          keepdims=True)
            noises = jax.random.normal(key, (samples, *images.shape)) * noise * span
            # The class stays the clean image's, so every noisy copy explains the same one.
            noisy = jax.vmap(lambda n: class_gradient(variables, images + n, chosen)[0])(noises)
            grads = noisy.mean(axis=0)
        return jnp.abs(grads).max(axis=-1), chosen

    return jax.jit(run)

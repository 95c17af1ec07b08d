"""The course's hand-made convolution kernels, by name, with the course's values.

Before any learning, the course motivates convolution with kernels written by hand: blurs,
sharpening, derivatives (Sobel, Laplacian, central differences), emboss, and a bank of eight
oriented edge detectors used in its edge-detection case study. They live here, next to
`conv2d`, so the gallery (`python -m vision_jax.filters`) and the tests read the same values.

Single kernels are 2-D (kh, kw) float32 arrays, applied as written by `conv2d`'s
cross-correlation (``conv2d(..., flip_kernel=True)`` is true convolution). ``edges8`` is the
3x3x3x8 HWIO bank: output channel k is the edge detector at 45*k degrees, and each of the
three input channels gets a third of it, so the bank responds to the RGB average.
"""

from __future__ import annotations

import numpy as np

from vision_jax.errors import ConfigError

# The four base orientations of the edge bank (0, 45, 90, 135 degrees); 180..315 are their
# negatives. 0 degrees responds to a horizontal edge that is dark above and bright below.
_EDGE_BASES = (
    ((-1, -1, -1), (0, 0, 0), (1, 1, 1)),
    ((-1, -1, 0), (-1, 0, 1), (0, 1, 1)),
    ((-1, 0, 1), (-1, 0, 1), (-1, 0, 1)),
    ((0, 1, 1), (-1, 0, 1), (-1, -1, 0)),
)
EDGE_ANGLES = tuple(range(0, 360, 45))

_FIXED = {
    "gaussian": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16,
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
    "sobel_x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "sobel_y": np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]),
    "central_difference": np.array([[-0.5, 0.0, 0.5]]),
    "emboss": np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]),
}
# box_blur is 3x3; box_blur_<N> is NxN (the course shows 21x21) for any odd N.
_LISTED = ("box_blur", "box_blur_21", *_FIXED, "edges8")


def names() -> list[str]:
    """The kernel names `kernel` knows (``box_blur_<N>`` works for any odd N >= 1)."""
    return list(_LISTED)


def kernel(name: str) -> np.ndarray:
    """The named kernel: (kh, kw) float32, or (3, 3, 3, 8) HWIO float32 for ``edges8``."""
    if name in _FIXED:
        return _FIXED[name].astype(np.float32)
    if name == "edges8":
        return edges8()
    if name == "box_blur" or name.startswith("box_blur_"):
        size_text = name.removeprefix("box_blur").removeprefix("_") or "3"
        if not size_text.isdigit() or int(size_text) % 2 == 0:
            raise ConfigError(f"filter {name!r}: box_blur_<N> needs an odd N, e.g. box_blur_21")
        size = int(size_text)
        return np.full((size, size), 1.0 / size**2, np.float32)
    raise ConfigError(f"unknown filter {name!r}; choose from {', '.join(names())}")


def edges8() -> np.ndarray:
    """(3, 3, 3, 8) HWIO: edge detectors at 0, 45, ..., 315 degrees over the RGB average."""
    bases = np.array(_EDGE_BASES, np.float32)
    bank = np.concatenate([bases, -bases])  # (8, 3, 3): 180..315 are the negatives
    hw_out = np.moveaxis(bank, 0, -1)  # (3, 3, 8)
    return np.repeat(hw_out[:, :, None, :], 3, axis=2) / 3.0


def as_hwio(kernel_2d: np.ndarray, channels: int = 1) -> np.ndarray:
    """A 2-D kernel as an HWIO kernel (kh, kw, channels, 1) summing the same kernel over
    ``channels`` input channels, each weighted 1/channels (a filter of the channel mean)."""
    kernel_2d = np.asarray(kernel_2d, np.float32)
    if kernel_2d.ndim != 2:
        raise ValueError(f"as_hwio: kernel must be 2-D, got shape {kernel_2d.shape}")
    return np.repeat(kernel_2d[:, :, None, None], channels, axis=2) / channels

"""Matplotlib figures rendered with the Agg backend only.

Figures are built from ``matplotlib.figure.Figure`` with an explicit Agg canvas instead of
``pyplot``: nothing needs a display, no global backend is switched (so importing this
does not disturb a user's notebook), and nothing leaks between calls.
"""

from __future__ import annotations

import io
import os

from etils import epath
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure of the given size in inches, drawn by Agg."""
    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, out_png: str | os.PathLike, dpi: int = 100) -> epath.Path:
    """Writes ``figure`` as a PNG (creating parent folders) and returns the path, local or
    ``gs://`` (rendered in memory, then written as one object)."""
    from vision_jax import paths

    path = paths.as_path(out_png)
    if path.suffix.lower() != ".png":
        raise ValueError(f"out_png={os.fspath(path)!r} must end in .png.")
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=dpi, format="png")
    path.write_bytes(buffer.getvalue())
    return path

"""Matplotlib figures rendered with the Agg backend only.

Figures are built from ``matplotlib.figure.Figure`` with an explicit Agg canvas instead of
``pyplot``: nothing needs a display, no global backend is switched (so importing this
does not disturb a user's notebook), and nothing leaks between calls.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure of the given size in inches, drawn by Agg."""
    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, out_png: str | os.PathLike, dpi: int = 100) -> Path:
    """Writes ``figure`` as a PNG (creating parent folders) and returns the path."""
    path = Path(out_png)
    if path.suffix.lower() != ".png":
        raise ValueError(f"out_png={str(path)!r} must end in .png.")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, format="png")
    return path

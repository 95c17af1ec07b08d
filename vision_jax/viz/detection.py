"""Detections drawn on an image with PIL: boxes, class names and confidences."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vision_jax.viz.images import class_palette, to_uint8_rgb


def draw_detections(
    image,
    boxes,
    classes,
    scores=None,
    class_names: Sequence[str] | None = None,
    score_threshold: float = 0.0,
    line_width: int = 2,
) -> Image.Image:
    """Returns a copy of ``image`` with labelled boxes.

    Args:
      image: (H, W[, C]) float in [0, 1] or uint8.
      boxes: (N, 4) absolute-pixel ``xyxy``.
      classes: (N,) ints; negative entries are padding (e.g. from ``nms``) and skipped.
      scores: optional (N,) confidences; boxes scoring below ``score_threshold`` are skipped.
      class_names: names for the labels; class ids are shown without them.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    classes = np.asarray(classes, np.int64).reshape(-1)
    if classes.shape[0] != boxes.shape[0]:
        raise ValueError(f"classes has {classes.shape[0]} entries for {boxes.shape[0]} boxes.")
    if scores is not None:
        scores = np.asarray(scores, np.float64).reshape(-1)
        if scores.shape[0] != boxes.shape[0]:
            raise ValueError(f"scores has {scores.shape[0]} entries for {boxes.shape[0]} boxes.")
    num_colours = max(len(class_names) if class_names else 0, int(classes.max(initial=0)) + 1)
    palette = class_palette(num_colours)

    canvas = Image.fromarray(to_uint8_rgb(image))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for index in np.argsort(scores if scores is not None else np.zeros(len(boxes))):
        # Drawn lowest score first, so the most confident labels end up on top.
        class_id = int(classes[index])
        if class_id < 0 or (scores is not None and scores[index] < score_threshold):
            continue
        colour = tuple(int(c) for c in palette[class_id])
        x0, y0, x1, y1 = boxes[index]
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line_width)
        name = (
            class_names[class_id] if class_names and class_id < len(class_names) else str(class_id)
        )
        label = name if scores is None else f"{name} {scores[index]:.2f}"
        left, top, right, bottom = draw.textbbox((x0, y0), label, font=font)
        # The label sits above the box, or inside it when the box touches the top edge.
        shift = bottom - top + 2 if y0 >= bottom - top + 2 else 0
        draw.rectangle((left, top - shift, right + 2, bottom - shift), fill=colour)
        # Dark text on light colours, white on dark ones (ITU-R 601 luma).
        luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
        text_colour = (0, 0, 0) if luma > 140 else (255, 255, 255)
        draw.text((x0 + 1, y0 - shift), label, fill=text_colour, font=font)
    return canvas

"""Object detection with any registered `Detector` (vision_jax.models.detector): the task
sums the detector's loss, runs its decoding and class-aware NMS inside the jitted eval step,
computes COCO mAP on the host, and writes pictures / JSON of the detections. It never knows
which head it trains: target encoding, loss terms and decoding belong to the model.

Options, ``config.detection`` (all optional; see `DetectionSection`): max_boxes, the decoding
and NMS thresholds, and min_visible. Each detector's own geometry and loss weights are model
options in ``config.model`` (e.g. ``grid_size``, ``lambda_coord`` for ``yolo_v1``;
``center_radius``, ``box_loss`` for ``fcos``), typed and checked with the model section
(`vision_jax.training.run_config.model_options`); the task receives the built sections.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from vision_jax import models
from vision_jax.data.detection import DEFAULT_MIN_VISIBLE, detection_spec
from vision_jax.data.pipeline import ExampleSpec
from vision_jax.errors import ConfigError
from vision_jax.metrics.detection import DetectionEvaluator
from vision_jax.models.detector import Detector
from vision_jax.ops import boxes as box_ops
from vision_jax.sections import in_range, option
from vision_jax.tasks import TASKS
from vision_jax.tasks.base import TaskEntry


def _whole(value) -> str | None:
    return None if value >= 1 else "must be a positive integer"


# Fields config.detection held before each detector owned its options: an old config is
# told where they went rather than just "unknown field".
_DETECTOR_FIELDS = ("lambda_coord", "lambda_noobj", "grid_size", "boxes_per_cell",
                    "center_radius", "focal_alpha", "focal_gamma", "box_loss", "scale_ranges")


@dataclasses.dataclass(frozen=True)
class DetectionSection:
    """``config.detection``: what the task needs whichever detector it trains."""

    MOVED_FIELDS: ClassVar[Mapping[str, str]] = {
        name: f"is a detector option now; set config.model.{name} (if config.model_name "
              "takes it)" for name in _DETECTOR_FIELDS}

    max_boxes: int = option(32, "ground-truth boxes kept per image (padding with class -1)",
                            check=_whole)
    score_threshold: float = option(0.05, "detections scoring below this are dropped",
                                    check=in_range(0.0, 1.0))
    iou_threshold: float = option(0.5, "class-aware NMS overlap threshold",
                                  check=in_range(0.0, 1.0))
    max_detections: int = option(100, "detections kept per image after NMS", check=_whole)
    pre_nms_top_k: int = option(1000, "best candidates per image that enter NMS", check=_whole)
    min_visible: float = option(DEFAULT_MIN_VISIBLE, "augmentations drop a box whose visible "
                                "fraction falls below this", check=in_range(0.0, 1.0))


# Pictures show only confident detections (the JSON and the metrics keep all of them), drawn
# on images enlarged to about this many pixels so the labels stay readable.
DRAW_SCORE_THRESHOLD = 0.3
DRAW_SIZE = 384


def _draw(image: np.ndarray, boxes, classes, scores, class_names):
    from vision_jax.viz.detection import draw_detections

    factor = max(1, DRAW_SIZE // max(image.shape[:2]))
    if factor > 1:
        image = np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
    return draw_detections(image, np.asarray(boxes) * factor, classes, scores, class_names,
                           score_threshold=DRAW_SCORE_THRESHOLD)


def _host(x) -> np.ndarray:
    """A replicated (possibly multi-process) array as NumPy on this host."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(x.addressable_data(0))
    return np.asarray(x)


class DetectionAccumulator:
    """Feeds each real (mask 1) image of the eval batches to a COCO `DetectionEvaluator`.

    Eval outputs are replicated, so every process accumulates the same images in the same
    order and computes the same metrics.
    """

    def __init__(self, num_classes: int, max_detections: int):
        self.evaluator = DetectionEvaluator(num_classes, max_detections=max_detections)
        self.num_images = 0
        self._result: dict | None = None

    def add(self, outputs: dict) -> None:
        out = {k: _host(v) for k, v in outputs.items()}
        for i in np.flatnonzero(out["mask"] > 0):
            gt = out["gt_classes"][i] >= 0
            dt = out["classes"][i] >= 0
            self.evaluator.add(self.num_images, out["gt_boxes"][i][gt], out["gt_classes"][i][gt],
                               out["boxes"][i][dt], out["scores"][i][dt], out["classes"][i][dt])
            self.num_images += 1
        self._result = None

    def result(self) -> dict:
        if self.num_images == 0:
            raise ValueError("no images were evaluated")
        if self._result is None:
            self._result = self.evaluator.compute()
        return self._result


class DetectionTask:
    """Loss, decoding and reports for a `Detector` (see the module docstring)."""

    def __init__(self, num_classes: int, class_names: list[str], image_size: int,
                 detector: Detector, options: DetectionSection | None = None,
                 normalize: tuple = ((0.0,), (1.0,))):
        self.normalize = normalize  # (mean, std) of config.normalize, to undo for pictures
        self.num_classes = num_classes
        self.class_names = list(class_names)
        self.image_size = image_size
        self.detector = detector
        self.options = options or DetectionSection()

    # -- training --------------------------------------------------------------------------

    def loss(self, outputs: dict, batch: dict) -> tuple[jax.Array, dict]:
        loss, sums = self.detector.loss(outputs, batch["boxes"], batch["classes"],
                                        self.image_size)
        sums["count"] = jnp.asarray(batch["image"].shape[0], jnp.float32)
        return loss, sums

    # -- decoding --------------------------------------------------------------------------

    def decode(self, outputs: dict) -> dict[str, jax.Array]:
        """Raw head outputs -> NMS'd detections: boxes (N, D, 4) xyxy pixels of the model
        input, scores (N, D), classes (N, D) (-1 = padding), D = max_detections."""
        boxes, scores, classes = self.detector.decode(outputs, self.image_size)
        o = self.options
        top_k = o.pre_nms_top_k if o.pre_nms_top_k < scores.shape[1] else None
        boxes, scores, classes, _ = box_ops.batched_nms(
            boxes, scores, classes, iou_threshold=o.iou_threshold,
            score_threshold=o.score_threshold, max_detections=o.max_detections,
            pre_nms_top_k=top_k)
        return {"boxes": boxes, "scores": scores, "classes": classes}

    @functools.cached_property
    def _decode_jit(self):
        return jax.jit(self.decode)

    # -- evaluation ------------------------------------------------------------------------

    def example_spec(self) -> ExampleSpec:
        return detection_spec(self.options.max_boxes, self.options.min_visible)

    def new_accumulator(self) -> DetectionAccumulator:
        return DetectionAccumulator(self.num_classes, self.options.max_detections)

    def eval_outputs(self, outputs: dict, batch: dict) -> dict:
        return {**self.decode(outputs), "gt_boxes": batch["boxes"],
                "gt_classes": batch["classes"], "mask": batch["mask"]}

    @staticmethod
    def summarize(sums) -> dict[str, float]:
        """COCO metrics of an accumulator (map, map50, map75, mar_<D>), or means of train sums."""
        if isinstance(sums, DetectionAccumulator):
            result = sums.result()
            return {k: float(v) for k, v in result.items()
                    if k in ("map", "map50", "map75") or k.startswith("mar_")
                    and not k.endswith(("small", "medium", "large"))}
        count = max(float(sums["count"]), 1.0)
        return {k: float(v) / count for k, v in sums.items() if k != "count"}

    def write_report(self, accumulator: DetectionAccumulator, out_dir: str,
                     prefix: str = "eval") -> dict:
        """Per-class AP (JSON + text table) next to the overall COCO metrics."""
        result = accumulator.result()
        report = {
            "images": accumulator.num_images,
            "metrics": {k: float(v) for k, v in result.items() if np.ndim(v) == 0},
            "per_class": {name: {"ap": float(result["per_class_ap"][i]),
                                 "ap50": float(result["per_class_ap50"][i])}
                          for i, name in enumerate(self.class_names)},
        }
        with epath.Path(out_dir, f"{prefix}_detection_report.json").open("w") as f:
            json.dump(report, f, indent=1)
        lines = [f"{'class':<24}{'AP@[.5:.95]':>12}{'AP@.5':>10}"]
        lines += [f"{name:<24}{v['ap']:>12.4f}{v['ap50']:>10.4f}"
                  for name, v in report["per_class"].items()]
        m = report["metrics"]
        lines += ["", f"{'all':<24}{m['map']:>12.4f}{m['map50']:>10.4f}",
                  f"images: {accumulator.num_images}  (-1 = no ground truth for the class)"]
        with epath.Path(out_dir, f"{prefix}_detection_report.txt").open("w") as f:
            f.write("\n".join(lines) + "\n")
        return report

    # -- pictures and predictions ------------------------------------------------------------

    def _host_detections(self, outputs: dict) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self._decode_jit(
            jax.tree.map(jnp.asarray, outputs)).items()}

    def write_examples(self, batch: dict, outputs: dict, out_dir: str,
                       prefix: str = "eval") -> None:
        """`<prefix>_examples/NNN.png`: the first eval images (config.normalize undone) with
        their detections."""
        mean, std = self.normalize
        dets = self._host_detections(outputs)
        folder = epath.Path(out_dir, f"{prefix}_examples")
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(np.asarray(batch["image"])):
            pixels = np.clip(image * np.asarray(std, np.float32) + np.asarray(mean, np.float32),
                             0, 1)
            with (folder / f"{i:03d}.png").open("wb") as f:
                _draw(pixels, dets["boxes"][i], dets["classes"][i], dets["scores"][i],
                      self.class_names).save(f, format="PNG")

    def write_predictions(self, images: list, outputs: dict, names: list[str],
                          out_dir: str) -> list[dict]:
        """`predictions.json` (boxes in original image pixels, class names, confidences) and
        `<name>.detections.png` per image (detections scoring >= DRAW_SCORE_THRESHOLD)."""
        dets = self._host_detections(outputs)
        results = []
        for i, (image, name) in enumerate(zip(images, names, strict=True)):
            height, width = np.asarray(image).shape[:2]
            scale = np.asarray([width, height, width, height], np.float32) / self.image_size
            keep = dets["classes"][i] >= 0
            boxes = dets["boxes"][i][keep] * scale
            classes, scores = dets["classes"][i][keep], dets["scores"][i][keep]
            results.append({"image": name, "detections": [
                {"box_xyxy": [round(float(v), 2) for v in box], "class": self.class_names[c],
                 "class_index": int(c), "confidence": float(s)}
                for box, c, s in zip(boxes, classes, scores, strict=True)]})
            stem = os.path.splitext(name)[0]
            with epath.Path(out_dir, f"{stem}.detections.png").open("wb") as f:
                _draw(np.asarray(image), boxes, classes, scores, self.class_names).save(
                    f, format="PNG")
        with epath.Path(out_dir, "predictions.json").open("w") as f:
            json.dump(results, f, indent=1)
        return results


# -- registration ------------------------------------------------------------------------------


def check_detection_options(options: DetectionSection, *, num_classes: int, augment: Any,
                            model: Any) -> None:
    """The model must be a `Detector` (its options and input size are checked with the model
    section: `Detector.check`)."""
    del options, augment  # every augmentation moves boxes with the image
    if not isinstance(models.create(model.model_name, num_classes=num_classes), Detector):
        raise ConfigError(f"config.model_name={model.model_name!r} has no detection head; "
                          "use a detector such as 'yolo_v1' or 'fcos' for "
                          "config.task='detection'")


def _create(options: DetectionSection, *, num_classes: int, info, data,
            model) -> DetectionTask:
    """The task, with class names from the dataset's objects/label feature (or COCO's
    categories) and the detector the model section describes."""
    from vision_jax.data.detection import detection_class_names

    names = info.class_names or detection_class_names(data.dataset, data.data_dir or None)
    if len(names) != num_classes:
        raise ConfigError(f"config.num_classes={num_classes} but dataset "
                          f"{data.dataset!r} has {len(names)} object classes; set "
                          f"--config.num_classes={len(names)}")
    detector = models.create(model.model_name, **model.kwargs)
    return DetectionTask(num_classes, list(names), data.image_size, detector, options,
                         (tuple(data.normalize.mean), tuple(data.normalize.std)))


TASKS.register("detection", TaskEntry(create=_create, options=DetectionSection,
                                      group="detection", check=check_detection_options))

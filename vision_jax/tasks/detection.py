"""Object detection with the `yolo` model: variant-specific loss, decoding + NMS inside the
jitted eval step, COCO mAP on the host, and pictures / JSON of the detections.

Fields of ``config.detection`` (all optional; defaults in `DEFAULTS`):
  max_boxes: ground-truth boxes kept per image (padding with class -1).
  score_threshold, iou_threshold, max_detections, pre_nms_top_k: decoding and class-aware NMS.
  min_visible: augmentations drop a box whose visible fraction falls below this.
  lambda_coord, lambda_noobj: the YOLO v1 loss weights (paper: 5 and 0.5).
  center_radius, focal_alpha, focal_gamma, box_loss ("giou" | "ciou"), scale_ranges: the fpn
    head's assignment and loss (see `detection_fpn`).
The variant and its geometry (``variant``, ``grid_size``, ``boxes_per_cell``) are model
arguments in ``config.model``.
"""

from __future__ import annotations

import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vision_jax.data.detection import DEFAULT_MIN_VISIBLE, detection_spec
from vision_jax.metrics.detection import DetectionEvaluator
from vision_jax.models.yolo import FPN_STRIDES, VARIANTS, Yolo, fpn_points
from vision_jax.ops import boxes as box_ops
from vision_jax.tasks import detection_fpn, detection_v1

DEFAULTS = {
    "max_boxes": 32,
    "score_threshold": 0.05,
    "iou_threshold": 0.5,
    "max_detections": 100,
    "pre_nms_top_k": 1000,
    "min_visible": DEFAULT_MIN_VISIBLE,
    "lambda_coord": 5.0,
    "lambda_noobj": 0.5,
    "center_radius": 1.5,
    "focal_alpha": 0.25,
    "focal_gamma": 2.0,
    "box_loss": "giou",
    "scale_ranges": detection_fpn.DEFAULT_SCALE_RANGES,
}


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
    """Loss, decoding and reports for `yolo` detectors (see the module docstring)."""

    def __init__(self, num_classes: int, class_names: list[str], image_size: int,
                 model: dict | None = None, detection: dict | None = None,
                 normalize: tuple = ((0.0,), (1.0,))):
        model = dict(model or {})
        self.normalize = normalize  # (mean, std) of config.normalize, to undo for pictures
        self.num_classes = num_classes
        self.class_names = list(class_names)
        self.image_size = image_size
        self.variant = model.get("variant", Yolo.variant)
        self.grid_size = model.get("grid_size", Yolo.grid_size)
        self.boxes_per_cell = model.get("boxes_per_cell", Yolo.boxes_per_cell)
        self.params = {**DEFAULTS, **dict(detection or {})}
        self.points = fpn_points(image_size, FPN_STRIDES)
        self.ranges = detection_fpn.point_scale_ranges(
            self.points, FPN_STRIDES, self.params["scale_ranges"])

    # -- training --------------------------------------------------------------------------

    def loss(self, outputs: dict, batch: dict) -> tuple[jax.Array, dict]:
        p = self.params
        if self.variant == "v1":
            loss, sums = detection_v1.v1_loss(
                outputs["grid"], batch["boxes"], batch["classes"], image_size=self.image_size,
                boxes_per_cell=self.boxes_per_cell, lambda_coord=p["lambda_coord"],
                lambda_noobj=p["lambda_noobj"])
        else:
            loss, sums = detection_fpn.fpn_loss(
                outputs, batch["boxes"], batch["classes"], points=self.points,
                ranges=self.ranges, center_radius=p["center_radius"],
                focal_alpha=p["focal_alpha"], focal_gamma=p["focal_gamma"],
                box_loss=p["box_loss"])
        sums["count"] = jnp.asarray(batch["image"].shape[0], jnp.float32)
        return loss, sums

    # -- decoding --------------------------------------------------------------------------

    def decode(self, outputs: dict) -> dict[str, jax.Array]:
        """Raw head outputs -> NMS'd detections: boxes (N, D, 4) xyxy pixels of the model
        input, scores (N, D), classes (N, D) (-1 = padding), D = max_detections."""
        if self.variant == "v1":
            boxes, scores, classes = detection_v1.v1_decode(
                outputs["grid"], image_size=self.image_size, boxes_per_cell=self.boxes_per_cell)
        else:
            boxes, scores, classes = detection_fpn.fpn_decode(
                outputs, points=self.points, image_size=self.image_size)
        p = self.params
        top_k = p["pre_nms_top_k"] if p["pre_nms_top_k"] < scores.shape[1] else None
        boxes, scores, classes, _ = box_ops.batched_nms(
            boxes, scores, classes, iou_threshold=p["iou_threshold"],
            score_threshold=p["score_threshold"], max_detections=p["max_detections"],
            pre_nms_top_k=top_k)
        return {"boxes": boxes, "scores": scores, "classes": classes}

    @functools.cached_property
    def _decode_jit(self):
        return jax.jit(self.decode)

    # -- evaluation ------------------------------------------------------------------------

    @staticmethod
    def example_spec(config: ml_collections.ConfigDict):
        det = {**DEFAULTS, **config.detection.to_dict()}
        return detection_spec(config, det["max_boxes"], det["min_visible"])

    def new_accumulator(self) -> DetectionAccumulator:
        return DetectionAccumulator(self.num_classes, self.params["max_detections"])

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
        with open(os.path.join(out_dir, f"{prefix}_detection_report.json"), "w") as f:
            json.dump(report, f, indent=1)
        lines = [f"{'class':<24}{'AP@[.5:.95]':>12}{'AP@.5':>10}"]
        lines += [f"{name:<24}{v['ap']:>12.4f}{v['ap50']:>10.4f}"
                  for name, v in report["per_class"].items()]
        m = report["metrics"]
        lines += ["", f"{'all':<24}{m['map']:>12.4f}{m['map50']:>10.4f}",
                  f"images: {accumulator.num_images}  (-1 = no ground truth for the class)"]
        with open(os.path.join(out_dir, f"{prefix}_detection_report.txt"), "w") as f:
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
        folder = os.path.join(out_dir, f"{prefix}_examples")
        os.makedirs(folder, exist_ok=True)
        for i, image in enumerate(np.asarray(batch["image"])):
            pixels = np.clip(image * np.asarray(std, np.float32) + np.asarray(mean, np.float32),
                             0, 1)
            _draw(pixels, dets["boxes"][i], dets["classes"][i], dets["scores"][i],
                  self.class_names).save(os.path.join(folder, f"{i:03d}.png"))

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
            _draw(np.asarray(image), boxes, classes, scores, self.class_names).save(
                os.path.join(out_dir, f"{stem}.detections.png"))
        with open(os.path.join(out_dir, "predictions.json"), "w") as f:
            json.dump(results, f, indent=1)
        return results


# -- registry hooks ----------------------------------------------------------------------------


def create_detection_task(config: ml_collections.ConfigDict, info) -> DetectionTask:
    """The task for `config`, with class names from the dataset's objects/label feature."""
    from vision_jax.data.detection import detection_class_names
    from vision_jax.training.validate import ConfigError

    names = info.class_names or detection_class_names(config.dataset, config.data_dir or None)
    if len(names) != config.num_classes:
        raise ConfigError(f"config.num_classes={config.num_classes} but dataset "
                          f"{config.dataset!r} has {len(names)} object classes; set "
                          f"--config.num_classes={len(names)}")
    task = DetectionTask(config.num_classes, list(names), config.image_size,
                         config.model.to_dict(), config.detection.to_dict(),
                         (tuple(config.normalize.mean), tuple(config.normalize.std)))
    return task


def validate_detection_config(config: ml_collections.ConfigDict) -> None:
    """Checks config.detection's fields and what detection needs from the model and data."""
    for key, value in config.detection.items():
        if key not in DEFAULTS:
            raise ValueError(f"config.detection.{key} is not a known field; known: "
                             f"{', '.join(sorted(DEFAULTS))}")
        default = DEFAULTS[key]
        if isinstance(default, int | float) and not isinstance(default, bool) and (
                isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"config.detection.{key}={value!r} must be a number like the "
                             f"default {default!r}")
    det = {**DEFAULTS, **config.detection.to_dict()}
    for key in ("max_boxes", "max_detections", "pre_nms_top_k"):
        if int(det[key]) < 1 or int(det[key]) != det[key]:
            raise ValueError(f"config.detection.{key}={det[key]} must be a positive integer")
    if not 0 <= det["min_visible"] <= 1:
        raise ValueError(f"config.detection.min_visible={det['min_visible']} must be in [0, 1]")
    if det["box_loss"] not in ("giou", "ciou"):
        raise ValueError(f"config.detection.box_loss={det['box_loss']!r} must be 'giou' or "
                         "'ciou'")
    if len(det["scale_ranges"]) != len(FPN_STRIDES):
        raise ValueError(f"config.detection.scale_ranges needs one (low, high) per fpn stride "
                         f"{FPN_STRIDES}")
    if config.model_name != "yolo":
        raise ValueError(f"config.model_name={config.model_name!r} has no detection head; "
                         "use config.model_name='yolo' for config.task='detection'")
    variant = config.model.get("variant", Yolo.variant)
    if variant not in VARIANTS:
        raise ValueError(f"config.model.variant={variant!r} is unknown; use one of {VARIANTS}")
    if variant == "fpn" and config.image_size % max(FPN_STRIDES):
        raise ValueError(f"config.image_size={config.image_size} must be a multiple of "
                         f"{max(FPN_STRIDES)} for the fpn variant, e.g. "
                         f"{max(config.image_size // 32, 1) * 32}")

"""Semantic segmentation: per-pixel softmax cross-entropy (optional class weights and Dice
term, an ignore label), pixel accuracy, and a confusion matrix giving mIoU and per-class IoU.

Config fields (`config.segmentation`, all optional; `SegmentationOptions` below):
  ignore_label (255): pixels with this label count in no loss and no metric; it must be
    >= num_classes and <= 255 (masks are uint8). Padding added by crops and zooms gets it.
  class_weights (()): one weight per class; the cross-entropy is the weighted mean over
    non-ignored pixels, sum(w[y] * ce) / sum(w[y]), as in PyTorch's weighted CrossEntropyLoss.
  dice_weight (0.0): adds dice_weight * (1 - mean over classes of the soft Dice coefficient
    (2 sum(p * y) + 1) / (sum(p) + sum(y) + 1)), summed over the batch's non-ignored pixels.
  class_names (()): names for reports; default "class_<i>".
  mask_key, mask_mapping, unmapped: how records' masks become classes
    (see `vision_jax.data.segmentation`).

Train metrics: loss (the optimised objective) and pixel_accuracy. Eval metrics: loss (the
class-weighted cross-entropy alone), pixel_accuracy, mean_accuracy, miou and iou/<class>,
all from sums accumulated over batches and devices, padding examples excluded.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils import epath
from PIL import Image

from vision_jax.data.pipeline import ExampleSpec
from vision_jax.data.segmentation import MASK_KEY, resize_mask, segmentation_spec
from vision_jax.errors import ConfigError
from vision_jax.metrics.segmentation import (
    per_class_accuracy,
    segmentation_confusion_update,
    segmentation_metrics,
)
from vision_jax.sections import in_range, non_negative, one_of, option
from vision_jax.tasks import TASKS
from vision_jax.tasks.base import SumAccumulator, TaskEntry

DICE_SMOOTH = 1.0  # keeps the Dice term defined (and its gradient finite) for absent classes


class SegmentationTask:
    """Loss, metric sums and reports for per-pixel classification into `num_classes`."""

    draws_examples = True

    def __init__(self, num_classes: int, class_names: list[str] | None = None, *,
                 ignore_label: int = 255, class_weights: list[float] | None = None,
                 dice_weight: float = 0.0, normalize_mean=(0.0,), normalize_std=(1.0,),
                 spec: ExampleSpec | None = None):
        self.num_classes = num_classes
        self.class_names = list(class_names or [f"class_{i}" for i in range(num_classes)])
        self.ignore_label = ignore_label
        self.class_weights = (np.asarray(class_weights, np.float32) if class_weights
                              else np.ones(num_classes, np.float32))
        self.dice_weight = dice_weight
        self.normalize_mean = np.asarray(normalize_mean, np.float32)
        self.normalize_std = np.asarray(normalize_std, np.float32)
        self._spec = spec

    # -- inside jit ------------------------------------------------------------------------------

    def _cross_entropy(self, logits, labels, pixel_mask):
        """Per-pixel CE, per-pixel weights (0 where ignored), the valid mask and safe labels."""
        valid = (labels >= 0) & (labels < self.num_classes) & pixel_mask
        safe = jnp.where(valid, labels, 0)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, safe)
        weights = jnp.asarray(self.class_weights)[safe] * valid
        return ce, weights, valid, safe

    def _dice_loss(self, logits, safe, valid):
        probs = jax.nn.softmax(logits, -1) * valid[..., None]
        onehot = jax.nn.one_hot(safe, self.num_classes) * valid[..., None]
        intersection = jnp.sum(probs * onehot, axis=(0, 1, 2))
        total = jnp.sum(probs, axis=(0, 1, 2)) + jnp.sum(onehot, axis=(0, 1, 2))
        dice = (2 * intersection + DICE_SMOOTH) / (total + DICE_SMOOTH)
        return 1.0 - jnp.mean(dice)

    def objective(self, logits: jax.Array, labels: jax.Array,
                  pixel_mask: jax.Array | None = None) -> jax.Array:
        """The scalar training loss (weighted CE + dice_weight * Dice) of a batch."""
        logits = logits.astype(jnp.float32)
        pixel_mask = jnp.ones(labels.shape, bool) if pixel_mask is None else pixel_mask
        ce, weights, valid, safe = self._cross_entropy(logits, labels, pixel_mask)
        loss = jnp.sum(ce * weights) / jnp.maximum(jnp.sum(weights), 1e-12)
        if self.dice_weight:
            loss = loss + self.dice_weight * self._dice_loss(logits, safe, valid)
        return loss

    def loss(self, logits: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        labels = batch["segmentation"]
        loss = self.objective(logits, labels)
        valid = (labels >= 0) & (labels < self.num_classes)
        preds = jnp.argmax(logits, -1)
        sums = {
            "loss": loss * labels.shape[0],
            "count": jnp.asarray(labels.shape[0], jnp.float32),
            "correct": jnp.sum((preds == labels) & valid),
            "pixels": jnp.sum(valid),
        }
        return loss, sums

    def eval_outputs(self, logits: jax.Array, batch: dict) -> dict:
        logits = logits.astype(jnp.float32)
        labels = batch["segmentation"]
        pixel_mask = jnp.broadcast_to(batch["mask"][:, None, None] > 0, labels.shape)
        ce, weights, _, _ = self._cross_entropy(logits, labels, pixel_mask)
        preds = jnp.argmax(logits, -1)
        return {
            "loss": jnp.sum(ce * weights),
            "loss_weight": jnp.sum(weights),
            "confusion": segmentation_confusion_update(
                jnp.zeros((self.num_classes, self.num_classes), jnp.int32), labels, preds,
                self.num_classes, ignore_label=self.ignore_label, mask=pixel_mask),
        }

    # -- on the host ------------------------------------------------------------------------------

    def example_spec(self) -> ExampleSpec:
        """The spec the task was created with, or identity mask values (class v = value v)."""
        return self._spec or segmentation_spec(self.num_classes, ignore_label=self.ignore_label)

    @staticmethod
    def new_accumulator() -> SumAccumulator:
        return SumAccumulator()

    def summarize(self, sums) -> dict[str, float]:
        """Train sums -> loss, pixel_accuracy; eval sums -> loss, pixel_accuracy,
        mean_accuracy, miou and iou/<class> (classes absent from labels and predictions,
        whose IoU is undefined, are left out)."""
        if isinstance(sums, SumAccumulator):
            sums = sums.result()
        if "confusion" not in sums:
            return {"loss": float(sums["loss"]) / max(float(sums["count"]), 1.0),
                    "pixel_accuracy": float(sums["correct"]) / max(float(sums["pixels"]), 1.0)}
        metrics = segmentation_metrics(np.asarray(sums["confusion"]))
        out = {"loss": float(sums["loss"]) / max(float(sums["loss_weight"]), 1e-12),
               "pixel_accuracy": metrics["pixel_accuracy"],
               "mean_accuracy": metrics["mean_accuracy"], "miou": metrics["miou"]}
        for name, iou in zip(self.class_names, metrics["per_class_iou"], strict=True):
            if not np.isnan(iou):
                out[f"iou/{name}"] = float(iou)
        return out

    def write_report(self, accumulator: SumAccumulator, out_dir: str,
                     prefix: str = "eval") -> dict:
        """Per-class IoU / accuracy / pixel counts as `<prefix>_segmentation_report.{json,txt}`,
        and the pixel confusion matrix as CSV."""
        conf = np.asarray(accumulator.result()["confusion"])
        metrics = segmentation_metrics(conf)
        accuracy = per_class_accuracy(conf)
        classes = [{"class": name, "iou": _none_if_nan(iou), "accuracy": _none_if_nan(acc),
                    "pixels": int(support)}
                   for name, iou, acc, support in zip(
                       self.class_names, metrics["per_class_iou"], accuracy, conf.sum(1),
                       strict=True)]
        report = {"pixel_accuracy": metrics["pixel_accuracy"],
                  "mean_accuracy": metrics["mean_accuracy"], "miou": metrics["miou"],
                  "classes": classes}
        width = max(12, *(len(n) for n in self.class_names))
        lines = [f"{'class':<{width}} {'IoU':>7} {'acc':>7} {'pixels':>12}"]
        for row in classes:
            lines.append(f"{row['class']:<{width}} {_fmt(row['iou'])} {_fmt(row['accuracy'])} "
                         f"{row['pixels']:>12d}")
        lines += ["", f"{'mIoU':<{width}} {metrics['miou']:7.4f}",
                  f"{'pixel acc':<{width}} {metrics['pixel_accuracy']:7.4f}"]
        with epath.Path(out_dir, f"{prefix}_segmentation_report.txt").open("w") as f:
            f.write("\n".join(lines) + "\n")
        with epath.Path(out_dir, f"{prefix}_segmentation_report.json").open("w") as f:
            json.dump(report, f, indent=1)
        with epath.Path(out_dir, f"{prefix}_confusion_matrix.csv").open("w") as f:
            np.savetxt(f, conf, fmt="%d", delimiter=",")
        return report

    def _unnormalize(self, images: np.ndarray) -> np.ndarray:
        return np.clip(images * self.normalize_std + self.normalize_mean, 0.0, 1.0)

    def write_examples(self, batch: dict, logits: np.ndarray, out_dir: str,
                       prefix: str = "eval") -> None:
        """`<prefix>_examples.png`: image / true mask / predicted mask, one row per image."""
        from vision_jax.viz.segmentation import save_segmentation_grid

        preds = np.argmax(np.asarray(logits), -1)
        save_segmentation_grid(self._unnormalize(np.asarray(batch["image"])),
                               np.asarray(batch["segmentation"]), preds,
                               os.path.join(out_dir, f"{prefix}_examples.png"), self.num_classes)

    def write_predictions(self, images: list[np.ndarray], logits: np.ndarray, names: list[str],
                          out_dir: str) -> list[dict]:
        """Per image `<stem>_mask.png` (palette PNG of class ids at the image's own size,
        resized nearest) and `<stem>_overlay.png`; a summary in `predictions.json`."""
        from vision_jax.viz.images import class_palette
        from vision_jax.viz.segmentation import overlay_mask

        palette = class_palette(self.num_classes).astype(np.uint8).reshape(-1).tolist()
        preds = np.argmax(np.asarray(logits), -1).astype(np.uint8)
        results = []
        for image, pred, name in zip(images, preds, names, strict=True):
            mask = resize_mask(pred, image.shape[:2])
            stem = os.path.splitext(name)[0]
            mask_path = os.path.join(out_dir, f"{stem}_mask.png")
            overlay_path = os.path.join(out_dir, f"{stem}_overlay.png")
            png = Image.fromarray(mask, mode="P")
            png.putpalette(palette)
            with epath.Path(mask_path).open("wb") as f:
                png.save(f, format="PNG")
            with epath.Path(overlay_path).open("wb") as f:
                Image.fromarray(overlay_mask(image, mask, self.num_classes)).save(f, format="PNG")
            counts = np.bincount(mask.reshape(-1), minlength=self.num_classes) / mask.size
            results.append({"image": name, "mask": mask_path, "overlay": overlay_path,
                            "class_fractions": {n: float(c) for n, c in
                                                zip(self.class_names, counts, strict=True)}})
        with epath.Path(out_dir, "predictions.json").open("w") as f:
            json.dump(results, f, indent=1)
        return results


def _none_if_nan(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _fmt(value: float | None) -> str:
    return f"{value:7.4f}" if value is not None else f"{'n/a':>7}"


@dataclasses.dataclass(frozen=True)
class SegmentationOptions:
    """``config.segmentation`` (see the module docstring for each field's meaning)."""

    ignore_label: int = option(255, "label of pixels no loss or metric counts",
                               check=in_range(0, 255))
    class_weights: tuple[float, ...] = option((), "one cross-entropy weight per class, or ()")
    dice_weight: float = option(0.0, "weight of the soft Dice term", check=non_negative)
    class_names: tuple[str, ...] = option((), "names for reports; () = class_<i>")
    mask_key: str = option(MASK_KEY, "the records' mask feature")
    mask_mapping: Any = option(None, "{raw mask value: class}, or None")
    unmapped: str = option("error", "a raw value outside mask_mapping: 'error' or 'ignore'",
                           check=one_of("error", "ignore"))


def check_segmentation_options(options: SegmentationOptions, *, num_classes: int,
                               augment: Any, model: Any) -> None:
    """The rules that tie `options` to the class count."""
    del augment, model  # every augmentation moves masks with the image; any model
    ignore = options.ignore_label
    if not num_classes <= ignore <= 255:
        raise ConfigError(f"config.segmentation.ignore_label={ignore!r} must be an int in "
                          f"[num_classes={num_classes}, 255] (masks are uint8)")
    if num_classes > 255:
        raise ConfigError(f"config.num_classes={num_classes}: segmentation masks are uint8, so "
                          "at most 255 classes")
    weights = options.class_weights
    if weights and (len(weights) != num_classes or min(weights) < 0 or sum(weights) <= 0):
        raise ConfigError(f"config.segmentation.class_weights={weights} must be {num_classes} "
                          "non-negative numbers (one per class, not all 0), or () for none")
    names = options.class_names
    if names and len(names) != num_classes:
        raise ConfigError(f"config.segmentation.class_names has {len(names)} names for "
                          f"config.num_classes={num_classes}")
    for raw, cls in dict(options.mask_mapping or {}).items():
        if not (str(raw).isdigit() and isinstance(cls, int)
                and (0 <= cls < num_classes or cls == ignore)):
            raise ConfigError(f"config.segmentation.mask_mapping entry {raw!r}: {cls!r} must map "
                              f"a raw value >= 0 to a class in [0, {num_classes}) or the ignore "
                              f"label {ignore}")



def _create(options: SegmentationOptions, *, num_classes: int, info, data,
            model) -> SegmentationTask:
    del info, model  # masks come from the records; any dense-output model
    spec = segmentation_spec(
        num_classes, dataset=data.dataset, data_dir=data.data_dir,
        ignore_label=options.ignore_label, mask_mapping=options.mask_mapping,
        mask_key=options.mask_key, unmapped=options.unmapped)
    return SegmentationTask(
        num_classes, list(options.class_names) or None, ignore_label=options.ignore_label,
        class_weights=list(options.class_weights) or None, dice_weight=options.dice_weight,
        normalize_mean=data.normalize.mean, normalize_std=data.normalize.std, spec=spec)


TASKS.register("segmentation", TaskEntry(create=_create, options=SegmentationOptions,
                                         group="segmentation", check=check_segmentation_options))

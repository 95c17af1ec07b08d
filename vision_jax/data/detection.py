"""Detection data: records with boxes, box-aware transforms, the ExampleSpec, COCO JSON.

An example is ``{"image": HWC, "boxes": (n, 4) float32 xyxy in pixels of the current
image, "classes": (n,) int32}``. Batches pad the box lists to ``config.detection.max_boxes``
with class -1 (boxes beyond that are dropped, first ones kept).

Sources give records in the layout of the TFDS catalog's detection datasets (VOC,
COCO, `builtin:shapes_detection`): ``objects/bbox`` normalised ``(ymin, xmin, ymax, xmax)``
and ``objects/label``. `coco:<root>` reads COCO-format JSON (see `open_coco`).

Geometric augmentations move the boxes with the pixels, clip them to the image and drop
a box whose visible area falls below ``config.detection.min_visible`` of its area before
the transform (or that has no width or height left). Rotation is not box-safe and is
refused by the task's config check.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import grain
import ml_collections
import numpy as np
from PIL import Image

from vision_jax.data import transforms
from vision_jax.data.pipeline import ExampleSpec

DEFAULT_MIN_VISIBLE = 0.25


# -- records -> examples -----------------------------------------------------------------------


def select_objects(record: dict[str, Any]) -> dict[str, Any]:
    """A TFDS-layout detection record -> example with pixel xyxy boxes of the original image."""
    image = np.asarray(record["image"])
    height, width = image.shape[:2]
    objects = record["objects"]
    yxyx = np.asarray(objects["bbox"], np.float32).reshape(-1, 4)
    boxes = yxyx[:, [1, 0, 3, 2]] * np.asarray([width, height, width, height], np.float32)
    classes = np.asarray(objects["label"], np.int32).reshape(-1)
    if "is_crowd" in objects:
        # TFDS COCO keeps crowd regions (one box around many objects); COCO's own protocol
        # neither trains nor scores on them, and the `coco:` JSON reader skips them too.
        keep = ~np.asarray(objects["is_crowd"], bool).reshape(-1)
        boxes, classes = boxes[keep], classes[keep]
    return {"image": image, "boxes": boxes, "classes": classes}


# -- box geometry ------------------------------------------------------------------------------


def box_areas(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0,
                                                                  None)


def clip_boxes(example: dict, areas_before: np.ndarray, min_visible: float) -> dict:
    """Clips boxes to the image; drops those whose visible part is < min_visible of before."""
    height, width = example["image"].shape[:2]
    boxes = np.clip(example["boxes"], 0, [width, height, width, height]).astype(np.float32)
    visible = box_areas(boxes)
    keep = (visible > 0) & (visible >= min_visible * np.maximum(areas_before, 1e-12))
    keep &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return {**example, "boxes": boxes[keep], "classes": example["classes"][keep]}


def resize_with_boxes(example: dict, size: int) -> dict:
    """Resizes the image to size x size (as `transforms.resize`) and scales the boxes."""
    height, width = example["image"].shape[:2]
    scale = np.asarray([size / width, size / height] * 2, np.float32)
    return {**example, "image": transforms.resize(example["image"], size),
            "boxes": (np.asarray(example["boxes"], np.float32) * scale).astype(np.float32)}


def flip_with_boxes(example: dict) -> dict:
    """Mirrors left-right; x -> width - x."""
    width = example["image"].shape[1]
    boxes = example["boxes"]
    flipped = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], -1)
    return {**example, "image": transforms.flip_horizontal(example["image"]),
            "boxes": flipped.astype(np.float32).reshape(-1, 4)}


def shift_with_boxes(example: dict, dy: int, dx: int, min_visible: float) -> dict:
    """Moves the image (and boxes) down by dy, right by dx; uncovered pixels are 0."""
    areas = box_areas(example["boxes"])
    moved = {**example, "image": transforms.shift_with_zeros(example["image"], dy, dx),
             "boxes": example["boxes"] + np.asarray([dx, dy, dx, dy], np.float32)}
    return clip_boxes(moved, areas, min_visible)


def scale_with_boxes(example: dict, scale: float, offset: tuple[int, int],
                     min_visible: float) -> dict:
    """Zooms by `scale` and places the result at `offset` = (oy, ox) on a zero canvas of the
    original size (a negative offset crops, a positive one pads), boxes moved alike."""
    image = example["image"].astype(np.float32, copy=False)
    height, width = image.shape[:2]
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    scaled = transforms.resize(image, (new_h, new_w))
    oy, ox = offset
    out = np.zeros_like(image)
    out[max(oy, 0):max(oy, 0) + min(new_h, height),
        max(ox, 0):max(ox, 0) + min(new_w, width)] = scaled[
        max(-oy, 0):max(-oy, 0) + min(new_h, height),
        max(-ox, 0):max(-ox, 0) + min(new_w, width)]
    factor = np.asarray([new_w / width, new_h / height] * 2, np.float32)
    areas = box_areas(example["boxes"] * factor)
    boxes = example["boxes"] * factor + np.asarray([ox, oy, ox, oy], np.float32)
    return clip_boxes({**example, "image": out, "boxes": boxes}, areas, min_visible)


class ResizeWithBoxes(grain.transforms.Map):
    def __init__(self, size: int):
        self.size = size

    def map(self, element: dict) -> dict:
        return resize_with_boxes(element, self.size)


class RandomFlipWithBoxes(grain.transforms.RandomMap):
    """Mirrors left-right with probability 1/2."""

    def random_map(self, element: dict, rng: np.random.Generator) -> dict:
        return flip_with_boxes(element) if rng.random() < 0.5 else element


class RandomShiftWithBoxes(grain.transforms.RandomMap):
    """Zero-pad by `padding` and crop back: a shift uniform in [-padding, padding]."""

    def __init__(self, padding: int, min_visible: float):
        self.padding, self.min_visible = padding, min_visible

    def random_map(self, element: dict, rng: np.random.Generator) -> dict:
        dy, dx = rng.integers(-self.padding, self.padding, size=2, endpoint=True)
        return shift_with_boxes(element, int(dy), int(dx), self.min_visible)


class RandomScaleWithBoxes(grain.transforms.RandomMap):
    """Zoom by s ~ U(scale_range), then a uniformly placed crop (s > 1) or padding (s < 1)."""

    def __init__(self, scale_range: tuple[float, float], min_visible: float):
        self.scale_range, self.min_visible = tuple(scale_range), min_visible

    def random_map(self, element: dict, rng: np.random.Generator) -> dict:
        height, width = element["image"].shape[:2]
        scale = rng.uniform(*self.scale_range)
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        oy = int(rng.integers(min(0, height - new_h), max(0, height - new_h), endpoint=True))
        ox = int(rng.integers(min(0, width - new_w), max(0, width - new_w), endpoint=True))
        return scale_with_boxes(element, scale, (oy, ox), self.min_visible)


# -- the ExampleSpec ---------------------------------------------------------------------------


def stack_boxes(examples: list[dict], max_boxes: int) -> dict[str, np.ndarray]:
    """Images stacked; boxes padded to (max_boxes, 4) with classes -1."""
    boxes = np.zeros((len(examples), max_boxes, 4), np.float32)
    classes = np.full((len(examples), max_boxes), -1, np.int32)
    for i, example in enumerate(examples):
        n = min(len(example["classes"]), max_boxes)
        boxes[i, :n] = np.asarray(example["boxes"], np.float32).reshape(-1, 4)[:n]
        classes[i, :n] = np.asarray(example["classes"])[:n]
    batch = {"image": np.stack([e["image"] for e in examples]).astype(np.float32, copy=False),
             "boxes": boxes, "classes": classes}
    if "mask" in examples[0]:
        batch["mask"] = np.asarray([e["mask"] for e in examples], np.float32)
    return batch


@dataclasses.dataclass(frozen=True)
class _Stack:
    max_boxes: int

    def __call__(self, examples: list[dict]) -> dict[str, np.ndarray]:
        return stack_boxes(examples, self.max_boxes)


def _preprocess(config: ml_collections.ConfigDict) -> list:
    steps: list = [transforms.ToFloat()]
    if config.get("image_channels", 0):
        steps.append(transforms.ConvertChannels(config.image_channels))
    return [*steps, ResizeWithBoxes(config.image_size)]


def detection_spec(config: ml_collections.ConfigDict, max_boxes: int,
                   min_visible: float = DEFAULT_MIN_VISIBLE) -> ExampleSpec:
    """How the shared pipeline builds detection batches (see the module docstring)."""

    def augmentations(augment: ml_collections.ConfigDict) -> list:
        chain: list = []
        if tuple(augment.scale) != (1.0, 1.0):
            chain.append(RandomScaleWithBoxes(tuple(augment.scale), min_visible))
        if augment.crop_padding > 0:
            chain.append(RandomShiftWithBoxes(augment.crop_padding, min_visible))
        if augment.flip:
            chain.append(RandomFlipWithBoxes())
        if augment.color_jitter > 0:
            chain.append(transforms.ColorJitter(augment.color_jitter))
        return chain

    return ExampleSpec(select=select_objects, preprocess=_preprocess,
                       augmentations=augmentations, stack=_Stack(max_boxes))


# -- class names ---------------------------------------------------------------------------------


def detection_class_names(dataset: str, data_dir: str | None = None) -> tuple[str, ...]:
    """Class names of a detection dataset: its ``objects/label`` feature, or COCO categories."""
    from vision_jax.data import sources

    scheme, rest = sources.parse_dataset(dataset)
    data_dir = os.path.expanduser(data_dir) if data_dir else None
    if scheme == "coco":
        return CocoIndex.load(_coco_root(rest, data_dir), None).class_names
    if scheme == "builtin":
        builder = sources.prepare_builtin(rest, data_dir)
    elif scheme == "tfds":
        builder = sources._tfds_builder(rest, data_dir)  # noqa: SLF001 - same package
    else:
        raise ValueError(f"config.dataset={dataset!r}: folder datasets have no boxes; use "
                         "builtin:shapes_detection, tfds:voc, tfds:coco/2017 or coco:<root>")
    features = builder.info.features
    try:
        return tuple(features["objects"]["label"].names)
    except (KeyError, TypeError, AttributeError):
        raise ValueError(f"config.dataset={dataset!r} has no objects/label feature; detection "
                         "needs objects/bbox and objects/label (VOC/COCO layout)") from None


# -- COCO-format JSON ----------------------------------------------------------------------------


def _coco_root(path: str, data_dir: str | None) -> str:
    path = os.path.expanduser(path)
    if not os.path.isabs(path) and data_dir:
        path = os.path.join(data_dir, path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"config.dataset='coco:{path}': directory "
                                f"{os.path.abspath(path)} does not exist")
    return path


def coco_paths(root: str, split: str) -> tuple[str, str]:
    """(annotation JSON, image folder) of `split` under `root`.

    The COCO 2017 layout: ``<root>/annotations/instances_<split>.json`` with images in
    ``<root>/<split>/``; ``<root>/annotations/<split>.json`` and ``<root>/images/<split>/``
    are accepted too. JSON ``file_name`` entries are relative to the image folder.
    """
    candidates = [os.path.join(root, "annotations", f"instances_{split}.json"),
                  os.path.join(root, "annotations", f"{split}.json")]
    json_path = next((p for p in candidates if os.path.isfile(p)), candidates[0])
    image_dir = os.path.join(root, split)
    if not os.path.isdir(image_dir) and os.path.isdir(os.path.join(root, "images", split)):
        image_dir = os.path.join(root, "images", split)
    return json_path, image_dir


def _coco_splits(root: str) -> list[str]:
    folder = os.path.join(root, "annotations")
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted(n[len("instances_"):-5] if n.startswith("instances_") else n[:-5]
                  for n in names if n.endswith(".json"))


@dataclasses.dataclass(frozen=True)
class CocoIndex:
    """A parsed, checked COCO JSON: images with their boxes, and the categories."""

    class_names: tuple[str, ...]
    files: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...]  # (height, width) per image
    boxes: tuple[np.ndarray, ...]  # (n, 4) xyxy pixels per image
    labels: tuple[np.ndarray, ...]  # (n,) contiguous class ids per image

    @staticmethod
    def load(root: str, split: str | None) -> CocoIndex:
        """Parses `split` (or only the categories of the first split when None)."""
        split = split or next(iter(_coco_splits(root)), "")
        json_path, image_dir = coco_paths(root, split)
        where = f"config.dataset='coco:{root}', split {split!r}"
        if not os.path.isfile(json_path):
            raise FileNotFoundError(
                f"{where}: annotation file {json_path} not found; expected "
                "<root>/annotations/instances_<split>.json (or <split>.json)")
        with open(json_path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: {json_path} is not valid JSON ({e})") from None
        for key in ("images", "annotations", "categories"):
            if key not in data:
                raise ValueError(f"{where}: {json_path} has no {key!r} list; it is not "
                                 "COCO-format JSON")
        categories = sorted(data["categories"], key=lambda c: c["id"])
        contiguous = {c["id"]: i for i, c in enumerate(categories)}
        images = {im["id"]: im for im in data["images"]}
        per_image: dict[int, list] = {i: [] for i in images}
        for ann in data["annotations"]:
            _check_annotation(ann, images, contiguous, json_path, where)
            if not ann.get("iscrowd", 0):
                per_image[ann["image_id"]].append(ann)
        files, sizes, boxes, labels = [], [], [], []
        for image_id in sorted(images):
            image = images[image_id]
            path = os.path.join(image_dir, image["file_name"])
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"{where}: image {path} (id {image_id}) listed in {json_path} is missing; "
                    "put the images in <root>/<split>/ or fix file_name")
            anns = per_image[image_id]
            xywh = np.asarray([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
            boxes.append(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1))
            labels.append(np.asarray([contiguous[a["category_id"]] for a in anns], np.int32))
            files.append(path)
            sizes.append((int(image["height"]), int(image["width"])))
        return CocoIndex(tuple(c["name"] for c in categories), tuple(files), tuple(sizes),
                         tuple(boxes), tuple(labels))


def _check_annotation(ann: dict, images: dict, categories: dict, json_path: str,
                      where: str) -> None:
    label = f"{where}: annotation {ann.get('id')} in {json_path}"
    if ann.get("image_id") not in images:
        raise ValueError(f"{label} refers to image_id {ann.get('image_id')}, which is not in "
                         "'images'")
    if ann.get("category_id") not in categories:
        raise ValueError(f"{label} has category_id {ann.get('category_id')}, which is not in "
                         "'categories'")
    bbox = ann.get("bbox")
    if not (isinstance(bbox, list | tuple) and len(bbox) == 4):
        raise ValueError(f"{label}: bbox must be [x, y, width, height], got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    image = images[ann["image_id"]]
    if w <= 0 or h <= 0:
        raise ValueError(f"{label}: bbox {bbox} has no area; width and height must be > 0")
    if x < -1 or y < -1 or x + w > image["width"] + 1 or y + h > image["height"] + 1:
        raise ValueError(f"{label}: bbox {bbox} lies outside its {image['width']}x"
                         f"{image['height']} image; boxes are [x, y, width, height] in pixels")


class CocoSource:
    """Random access to a COCO-format split, as TFDS-layout detection records."""

    def __init__(self, index: CocoIndex):
        self._index = index

    def __len__(self) -> int:
        return len(self._index.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        with Image.open(self._index.files[i]) as im:
            image = np.asarray(im.convert("RGB"))
        height, width = image.shape[:2]
        xyxy = self._index.boxes[i]
        yxyx = xyxy[:, [1, 0, 3, 2]] / np.asarray([height, width, height, width], np.float32)
        return {"image": image, "objects": {"bbox": np.clip(yxyx, 0, 1).astype(np.float32),
                                            "label": self._index.labels[i]}}


def open_coco(path: str, splits: dict[str, str], data_dir: str | None,
              channels: int | None = None):
    """Sources and info of a `coco:<root>` dataset (`vision_jax.data.sources` plugin scheme);
    images are always read as RGB (`channels` is ignored)."""
    del channels
    from vision_jax.data.sources import DatasetInfo

    root = _coco_root(path, data_dir)
    available = _coco_splits(root)
    for field, split in splits.items():
        if split not in available:
            raise ValueError(f"{field}={split!r} is not a split of coco:{root}; available: "
                             f"{', '.join(available) or 'none (no annotations/*.json)'}")
    indexes = {split: CocoIndex.load(root, split) for split in splits.values()}
    any_index = next(iter(indexes.values())) if indexes else CocoIndex.load(root, None)
    info = DatasetInfo(name=f"coco:{path}", num_classes=None, class_names=any_index.class_names,
                       image_shape=None, split_sizes={s: len(i.files) for s, i in indexes.items()},
                       num_channels=3)
    return {s: CocoSource(i) for s, i in indexes.items()}, info

"""Detection data: records with boxes, the ExampleSpec, COCO JSON.

An example is ``{"image": HWC, "boxes": (n, 4) float32 xyxy in pixels of the current
image, "classes": (n,) int32}``. Batches pad the box lists to ``config.detection.max_boxes``
with class -1 (boxes beyond that are dropped, first ones kept).

Sources give records in the layout of the TFDS catalog's detection datasets (VOC,
COCO, `builtin:shapes_detection`): ``objects/bbox`` normalised ``(ymin, xmin, ymax, xmax)``
and ``objects/label``. `coco:<root>` reads COCO-format JSON (see `open_coco`).

The on-device geometric augmentations (`vision_jax.augment.geometric`, rotation included)
move the boxes with the pixels by their corners, clip them to the image and drop a box
whose visible area falls below ``config.detection.min_visible`` of its transformed area
(or that has no width or height left).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from vision_jax.data.folder import ImageDecodeError, decode_image
from vision_jax.data.paths import resolve_dataset_dir
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


# -- the ExampleSpec ---------------------------------------------------------------------------


def detection_spec(max_boxes: int, min_visible: float = DEFAULT_MIN_VISIBLE) -> ExampleSpec:
    """How the shared pipeline builds detection examples: boxes and classes, padded to
    `max_boxes`; on device a box keeps its class while `min_visible` of it stays inside."""
    return ExampleSpec(select=select_objects, keys=frozenset({"boxes", "classes"}),
                       max_boxes=max_boxes, min_visible=min_visible)


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
    return resolve_dataset_dir("coco", path, data_dir,
                               "annotations/instances_<split>.json and <split>/ images")


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
        for image in data["images"]:
            _check_image_entry(image, json_path, where)
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


def _check_image_entry(image: Any, json_path: str, where: str) -> None:
    missing = [k for k in ("id", "file_name", "width", "height")
               if not isinstance(image, dict) or k not in image]
    if missing:
        name = image.get("file_name", image.get("id")) if isinstance(image, dict) else image
        raise ValueError(f"{where}: image entry {name!r} in {json_path} has no "
                         f"{', '.join(missing)}; COCO image entries need id, file_name, width "
                         "and height (in pixels)")


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
        path = self._index.files[i]
        image = decode_image(path, 3)
        height, width = image.shape[:2]
        if (height, width) != self._index.sizes[i]:  # the boxes are in the JSON's pixels
            expected_h, expected_w = self._index.sizes[i]
            raise ImageDecodeError(
                f"image {path} is {width}x{height} but its COCO entry says "
                f"{expected_w}x{expected_h} (width x height); fix the entry or the image", path)
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

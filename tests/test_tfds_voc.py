"""`tfds:voc/2007` on local files: the TFDS catalog's own VOC builder prepares a small
VOCdevkit-like tree (nothing is downloaded), then our `tfds:` source, detection pipeline and
trainer read it, and the boxes and classes that come out are the ones written in the XML files.

How the catalog builder runs without the network: see `tfds_local`. The VOC builder's
`_split_generators` asks for VOCtrainval_06-Nov-2007.tar and VOCtest_06-Nov-2007.tar; its
`_generate_examples` reads ``VOCdevkit/VOC2007/ImageSets/Main/{train,val,test}.txt``, then
``JPEGImages/<id>.jpg`` and ``Annotations/<id>.xml`` of every listed id.

Without TensorFlow: the VOC builder (unlike the Pet one) opens those list and XML files with
``tf.io.gfile.GFile``, the one thing it takes from TensorFlow. Where TensorFlow is missing, the
preparing process gets Python's ``open`` (which is what GFile does on a local path) as
``voc.tf.io.gfile.GFile`` and nothing else of ``tf``: any other use of TensorFlow in the catalog
code would fail the test. A user prepares the real data with TensorFlow installed (the
``[tfds-build]`` extra), where the builder runs as it is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from tfds_local import fill_download_cache, prepare_as_told
from train_cli import run_train

from vision_jax.augment import augment_section, device_preprocess
from vision_jax.data import data_section
from vision_jax.data.detection import detection_class_names, detection_spec
from vision_jax.data.pipeline import make_eval_iterator, make_train_iterator
from vision_jax.data.sources import open_splits
from vision_jax.training.defaults import default_config

VOC = "voc/2007"
DEVKIT = "VOCdevkit/VOC2007"
IMAGE_SIZE = 64
MAX_BOXES = 4  # the most objects an image below has is 3: every box reaches the batch
# The 20 PASCAL VOC classes in the devkit's (alphabetical) order, which class ids follow.
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")
POSES = ("Frontal", "Rear", "Left", "Right", "Unspecified")  # as the XML files spell them
SIZES = [(96, 64), (64, 80), (80, 80), (128, 96)]  # (width, height); real ones vary too
SPLITS = {"train": 4, "val": 3, "test": 3}  # ImageSets/Main/<name>.txt -> images
TFDS_SPLIT = {"train": "train", "val": "validation", "test": "test"}
# The catalog's GFile, without TensorFlow: see the module docstring.
GFILE_WITHOUT_TF = """
import importlib.util, types
if importlib.util.find_spec("tensorflow") is None:
    from tensorflow_datasets.object_detection import voc
    voc.tf = types.SimpleNamespace(io=types.SimpleNamespace(gfile=types.SimpleNamespace(
        GFile=open)))
"""


def _objects(rng: np.random.Generator, index: int, width: int, height: int) -> list[dict]:
    """Objects of image `index`: 1-3 of them (none for the second val image, as an image with
    no objects), boxes in VOC's 1-based integer pixel coordinates."""
    if index == SPLITS["train"] + 1:
        return []
    objects = []
    for k in range(1 + index % 3):
        xmin, ymin = int(rng.integers(1, width // 2)), int(rng.integers(1, height // 2))
        xmax = int(rng.integers(xmin + 8, width + 1))
        ymax = int(rng.integers(ymin + 8, height + 1))
        objects.append({"name": VOC_CLASSES[(7 * index + 3 * k) % len(VOC_CLASSES)],
                        "pose": POSES[(index + k) % len(POSES)],
                        "truncated": int(xmax == width or k == 1),
                        "difficult": int(index == 2 and k == 0), "box": (xmin, ymin, xmax, ymax)})
    return objects


def _xml(image_id: str, width: int, height: int, objects: list[dict]) -> str:
    """A VOC annotation file, with the fields the real ones carry."""
    parts = [f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename>"
             "<source><database>The VOC2007 Database</database></source>"
             f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
             "<segmented>0</segmented>"]
    for o in objects:
        xmin, ymin, xmax, ymax = o["box"]
        parts.append(f"<object><name>{o['name']}</name><pose>{o['pose']}</pose>"
                     f"<truncated>{o['truncated']}</truncated><difficult>{o['difficult']}"
                     f"</difficult><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
                     f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>\n"


def write_voc_trees(trainval: Path, test: Path, seed: int = 0) -> dict[str, dict]:
    """The two VOC2007 archives' trees, ``<root>/VOCdevkit/VOC2007/...``: trainval holds the
    train and val images, test the test images. Returns {image id: {"split", "size", "objects"}}.
    """
    rng = np.random.default_rng(seed)
    images: dict[str, dict] = {}
    index = 0
    for split, count in SPLITS.items():
        root = (test if split == "test" else trainval) / DEVKIT
        for folder in ("Annotations", "ImageSets/Main", "JPEGImages"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        ids = []
        for _ in range(count):
            image_id = f"{5 + 7 * index:06d}"  # VOC ids: zero-padded, with gaps
            width, height = SIZES[index % len(SIZES)]
            objects = _objects(rng, index, width, height)
            pixels = rng.integers(0, 60, (height, width, 3)).astype(np.uint8)
            for o in objects:  # a bright box per object; VOC coordinates are 1-based
                xmin, ymin, xmax, ymax = o["box"]
                pixels[ymin - 1:ymax, xmin - 1:xmax] = rng.integers(120, 255, 3)
            Image.fromarray(pixels).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
            (root / "Annotations" / f"{image_id}.xml").write_text(
                _xml(image_id, width, height, objects))
            images[image_id] = {"split": TFDS_SPLIT[split], "size": (width, height),
                                "objects": objects}
            ids.append(image_id)
            index += 1
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(i + "\n" for i in ids))
    main = trainval / DEVKIT / "ImageSets" / "Main"
    (main / "trainval.txt").write_text((main / "train.txt").read_text()
                                       + (main / "val.txt").read_text())
    return images


@pytest.fixture(scope="module")
def voc_data(tmp_path_factory) -> tuple[Path, Path, dict]:
    """(trees, data_dir, images): the VOC trees and a TFDS data dir holding them prepared by the
    catalog builder as array_record."""
    base = tmp_path_factory.mktemp("tfds_voc")
    trees, data_dir = base / "voc_archives", base / "tfds"
    images = write_voc_trees(trees / "trainval", trees / "test")
    fill_download_cache("voc", data_dir, {
        "VOCtrainval_06-Nov-2007.tar": trees / "trainval" / "VOCdevkit",
        "VOCtest_06-Nov-2007.tar": trees / "test" / "VOCdevkit"})
    assert tfds.builder_cls("voc").__module__ == "tensorflow_datasets.object_detection.voc"
    prepare_as_told(VOC, data_dir, preamble=GFILE_WITHOUT_TF)
    return trees, data_dir, images


def _jpeg(trees: Path, image: dict, image_id: str) -> np.ndarray:
    tree = trees / ("test" if image["split"] == "test" else "trainval")
    return np.asarray(Image.open(tree / DEVKIT / "JPEGImages" / f"{image_id}.jpg"))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _expected_boxes(image: dict, size: int = IMAGE_SIZE) -> np.ndarray:
    """The XML boxes as xyxy pixels of the image resized to size x size."""
    width, height = image["size"]
    boxes = np.asarray([o["box"] for o in image["objects"]], np.float64).reshape(-1, 4)
    return boxes * size / np.asarray([width, height, width, height])


def _expected_classes(image: dict) -> list[int]:
    return [VOC_CLASSES.index(o["name"]) for o in image["objects"]]


def test_catalog_records_are_the_files(voc_data):
    trees, data_dir, images = voc_data
    sources, info = open_splits(f"tfds:{VOC}", {"a": "train", "b": "validation", "c": "test"},
                                str(data_dir))
    assert info.split_sizes == {"train": 4, "validation": 3, "test": 3}
    assert info.num_channels == 3 and info.image_shape is None
    assert detection_class_names(f"tfds:{VOC}", str(data_dir)) == VOC_CLASSES
    seen = []
    for split, source in sources.items():
        for index in range(len(source)):
            record = source[index]
            image_id = _text(record["image/filename"]).removesuffix(".jpg")
            seen.append((split, image_id))
            image = images[image_id]
            np.testing.assert_array_equal(record["image"], _jpeg(trees, image, image_id))
            objects = record["objects"]
            width, height = image["size"]
            yxyx = [(ymin / height, xmin / width, ymax / height, xmax / width)
                    for xmin, ymin, xmax, ymax in (o["box"] for o in image["objects"])]
            np.testing.assert_allclose(np.reshape(objects["bbox"], (-1, 4)),
                                       np.reshape(yxyx, (-1, 4)), rtol=1e-6)
            assert list(objects["label"]) == _expected_classes(image)
            assert [POSES[p] for p in objects["pose"]] == [o["pose"] for o in image["objects"]]
            assert list(objects["is_difficult"]) == [o["difficult"] for o in image["objects"]]
            assert list(objects["is_truncated"]) == [o["truncated"] for o in image["objects"]]
    assert sorted(seen) == sorted((image["split"], i) for i, image in images.items())
    difficult = [o for image in images.values() for o in image["objects"] if o["difficult"]]
    assert len(difficult) == 1  # precondition: the tree has a difficult object


def _config(data_dir: Path) -> ml_collections.ConfigDict:
    config = default_config()
    config.task, config.dataset, config.data_dir = "detection", f"tfds:{VOC}", str(data_dir)
    config.model_name = "yolo"
    config.num_classes, config.image_size = len(VOC_CLASSES), IMAGE_SIZE
    config.train_split, config.eval_split = "train", "validation"
    config.normalize.mean, config.normalize.std = (0.0,), (1.0,)
    config.detection.max_boxes = MAX_BOXES
    return config


@pytest.mark.parametrize("split", ["validation", "test"])
def test_eval_batches_hold_the_xml_boxes(voc_data, split):
    trees, data_dir, images = voc_data
    config = _config(data_dir)
    config.eval_batch_size = 2  # 3 images: a full batch and a padded one
    sources, info = open_splits(config.dataset, {"config.eval_split": split}, config.data_dir)
    ids = [_text(sources[split][i]["image/filename"]).removesuffix(".jpg")
           for i in range(len(sources[split]))]
    batches = list(make_eval_iterator(data_section(config), split, process_index=0,
                                      process_count=1, spec=detection_spec(MAX_BOXES)))
    assert len(batches) == 2
    batch = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    assert batch["mask"].tolist() == [1, 1, 1, 0]
    assert batch["image"].shape == (4, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert batch["boxes"].shape == (4, MAX_BOXES, 4) and batch["classes"].shape == (4, MAX_BOXES)
    for row, image_id in enumerate(ids):
        image = images[image_id]
        expected = _expected_boxes(image)
        n = len(expected)
        np.testing.assert_allclose(batch["boxes"][row, :n], expected, rtol=1e-5, atol=1e-4)
        assert batch["classes"][row].tolist() == _expected_classes(image) + [-1] * (MAX_BOXES - n)
        # Where an object was drawn, the resized image is bright: the box is on the object.
        for x0, y0, x1, y1 in expected:
            centre = batch["image"][row, int((y0 + y1) / 2), int((x0 + x1) / 2)]
            assert centre.mean() > 100, (image_id, centre)
    if split == "validation":  # precondition: the empty image is in this split
        assert any(not images[i]["objects"] for i in ids)


def test_train_batches_hold_the_xml_boxes_or_their_mirrors(voc_data):
    _, data_dir, images = voc_data
    config = _config(data_dir)
    config.batch_size = 4
    config.augment.flip = True  # and no other augmentation, so each box is known up to a flip
    data, spec = data_section(config), detection_spec(MAX_BOXES)
    iterator = make_train_iterator(data, process_index=0, process_count=1, spec=spec)
    # The train step's preprocessing, on device.
    augment = jax.jit(device_preprocess(augment_section(config.augment), data.normalize,
                                        spec).train)
    train = {i: _expected_boxes(im) for i, im in images.items() if im["split"] == "train"}
    # A left-right flip maps x to S - x: (x0, y0, x1, y1) -> (S - x1, y0, S - x0, y1).
    mirrors = {i: b[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [IMAGE_SIZE, 0, IMAGE_SIZE, 0]
               for i, b in train.items()}
    flipped = 0
    for _ in range(4):  # four epochs of the 4 train images
        batch = jax.tree.map(np.asarray, augment(next(iterator), jax.random.key(0)))
        assert batch["image"].shape == (4, IMAGE_SIZE, IMAGE_SIZE, 3)
        matched = []
        for boxes, classes in zip(batch["boxes"], batch["classes"], strict=True):
            n = int((classes >= 0).sum())
            for image_id, expected in train.items():
                for candidate, is_flip in ((expected, False), (mirrors[image_id], True)):
                    if n == len(expected) and np.allclose(boxes[:n], candidate, atol=1e-3):
                        assert classes[:n].tolist() == _expected_classes(images[image_id])
                        matched.append(image_id)
                        flipped += is_flip
        assert sorted(matched) == sorted(train), "each train image once per epoch"
    assert 0 < flipped < 16


# Compiling the detector's init, train, eval and predict steps takes most of a minute on 2 cores.
@pytest.mark.slow
def test_training_on_the_catalog_dataset_reports_map(voc_data, tmp_path):
    _, data_dir, _ = voc_data
    run_train(tmp_path / "run", f"--config.dataset=tfds:{VOC}", f"--config.data_dir={data_dir}",
              "--config.num_classes=20", "--config.train_split=train",
              "--config.eval_split=validation", f"--config.image_size={IMAGE_SIZE}",
              "--config.batch_size=4", "--config.eval_batch_size=2", "--config.num_steps=2",
              "--config.eval_every_steps=2", "--config.log_every_steps=1",
              "--config.checkpoint_every_steps=2", "--config.model.backbone_width=8",
              "--config.model.fpn_width=16", "--config.model.head_convs=1",
              config="configs/shapes_yolo.py:smoke")
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    losses = {r["step"]: r["train/loss"] for r in records if "train/loss" in r}
    assert sorted(losses) == [1, 2] and all(np.isfinite(v) for v in losses.values()), records
    final = [r for r in records if "eval/map50" in r][-1]
    assert final["step"] == 2
    for key in ("eval/map", "eval/map50", "eval/map75"):
        assert 0 <= final[key] <= 1, (key, final)
    assert os.path.isfile(tmp_path / "run" / "config.json")

"""Multi-label data: the built-in shapes scenes labelled by the classes they show, CSV folder
data (and each malformed CSV's one-line error), and the class filter behind the digits
verification split."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from vision_jax.data.builtin import shapes_multilabel
from vision_jax.data.multilabel import ClassSubset, keep_classes, multi_hot, multi_hot_record
from vision_jax.data.multilabel_csv import MultilabelCsvSource, open_multilabel_folder
from vision_jax.data.registry import BUILTINS
from vision_jax.data.sources import open_splits
from vision_jax.errors import ConfigError

# --- builtin:shapes_multilabel ---------------------------------------------------------------


CAPPED_EXAMPLES = 40


@pytest.fixture(scope="module")
def shapes_sources(tmp_path_factory):
    """The builder's splits, capped at 40 examples each (a full build takes a minute)."""
    builder = shapes_multilabel.ShapesMultilabel(
        data_dir=str(tmp_path_factory.mktemp("shapes_multilabel")), file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        max_examples_per_split=CAPPED_EXAMPLES))
    return builder.as_data_source()


def test_shapes_multilabel_is_a_builtin_dataset():
    assert BUILTINS.get("shapes_multilabel") is shapes_multilabel.ShapesMultilabel


def test_shapes_multilabel_records_are_the_visible_classes(shapes_sources):
    seen = np.zeros(3)
    for split in ("train", "test"):
        source = shapes_sources[split]
        assert len(source) == CAPPED_EXAMPLES
        # Records are stored shuffled: match each one to its example through its pixels.
        examples = (shapes_multilabel.generate_example(split, i) for i in range(CAPPED_EXAMPLES))
        by_image = {e["image"].tobytes(): e for e in examples}
        for index in range(len(source)):
            record = source[index]
            example = by_image.pop(np.asarray(record["image"]).tobytes())
            assert list(record["labels"]) == example["labels"].tolist()
            # The labels are exactly the classes with visible pixels.
            visible = np.unique(example["scene"]["class_mask"])
            assert example["labels"].tolist() == [c - 1 for c in visible if c > 0]
            hot = multi_hot_record(record, 3)["labels"]
            assert hot.dtype == np.uint8 and hot.sum() == len(example["labels"])
            seen += hot
        assert not by_image
    assert np.all(seen > 0)


def test_shapes_multilabel_label_sets_vary():
    sets = [tuple(shapes_multilabel.generate_example("train", i)["labels"]) for i in range(100)]
    assert len(set(sets)) >= 6  # single classes, pairs and all three
    assert 0.2 < np.mean([len(s) == 1 for s in sets]) < 0.8


def test_shapes_multilabel_shapes_are_whole_and_apart():
    """Version 3.0.0: every labelled shape shows all its pixels (none is cut by the frame or
    hidden by another) and lies at least `APART` pixels from the others."""
    apart = shapes_multilabel.APART
    counts = []
    for index in range(40):
        scene = shapes_multilabel.generate_example("train", index)["scene"]
        instances = scene["instance_mask"]
        counts.append(len(scene["shapes"]))
        for number, shape in enumerate(scene["shapes"], start=1):
            # The shape drawn on a canvas with a 32-pixel margin: nothing of it is outside.
            whole = dataclasses.replace(shape, center_x=shape.center_x + 32,
                                        center_y=shape.center_y + 32).pixel_mask(128, 128)
            mine = instances == number
            assert mine.sum() == whole.sum() == shape.pixel_mask(64, 64).sum()
            # No other shape's pixel within `apart` (Chebyshev) of this one's.
            grown = np.zeros_like(mine)
            padded = np.pad(mine, apart)
            for dy in range(2 * apart + 1):
                for dx in range(2 * apart + 1):
                    grown |= padded[dy:dy + 64, dx:dx + 64]
            assert not np.any(grown & (instances > 0) & ~mine)
    assert max(counts) >= 3 and min(counts) == 1


def test_generate_scene_keeps_its_default_draws_when_apart_is_off():
    """`apart` is opt-in: the detection and segmentation scenes draw exactly as before it
    existed (digests of a scene drawn by the code before `apart` was added)."""
    from vision_jax.data.builtin import shapes_scenes

    scene = shapes_scenes.generate_scene(np.random.default_rng(3), image_size=64)
    assert hashlib.sha256(scene["image"].tobytes()).hexdigest() == (
        "8abe1134bf54aa0dbe486322d4485557bfe85ccdafd6ca74d9a6339a2f75b4cc")
    assert hashlib.sha256(scene["instance_mask"].tobytes()).hexdigest() == (
        "0ed161ec8ddbc3a4030a7e7f827441a5603ffda2ccf6616bb772e2eaf2eaf1ba")
    apart = shapes_scenes.generate_scene(np.random.default_rng(3), image_size=64, apart=2)
    assert not np.array_equal(scene["image"], apart["image"])


def test_shapes_multilabel_shapes_stand_out_from_the_softened_background():
    """Since version 2.0.0: every shape is large, wholly visible, and far in colour from the
    background, whose texture is softened (its pixels cluster near their mean)."""
    for index in range(30):
        example = shapes_multilabel.generate_example("test", index)
        scene, image = example["scene"], example["image"].astype(np.float64)
        background = image[scene["instance_mask"] == 0]
        mean = background.mean(axis=0)
        for number, shape in enumerate(scene["shapes"], start=1):
            low, high = shapes_multilabel.SIZE_RANGE
            assert low * 64 <= shape.size <= high * 64
            assert (scene["instance_mask"] == number).sum() >= shapes_multilabel.MIN_VISIBLE_PIXELS
            # Softened palette colours lie within 30 % of full range of the mean, so a shape
            # 100 levels from both is well away from the background's mean colour.
            assert np.linalg.norm(np.asarray(shape.color) - mean) > 40
        # Full-contrast textures spread up to 255 levels per channel; softened ones at most
        # 30 % of it (plus rounding).
        assert np.ptp(background, axis=0).max() <= 0.3 * 255 + 1


def test_contrasting_color_keeps_its_distance():
    from vision_jax.data.builtin import shapes_scenes

    rng = np.random.default_rng(0)
    palette = [np.array([10.0, 200.0, 30.0]), np.array([120.0, 120.0, 120.0])]
    for _ in range(50):
        color = np.asarray(shapes_scenes.contrasting_color(rng, palette, 100.0), np.float64)
        assert min(np.linalg.norm(color - c) for c in palette) >= 99.5  # rounded to integers


def test_multi_hot():
    np.testing.assert_array_equal(multi_hot([2, 0, 2], 4), [1, 0, 1, 0])
    np.testing.assert_array_equal(multi_hot([], 2), [0, 0])
    with pytest.raises(ValueError, match=r"outside \[0, 4\)"):
        multi_hot([4], 4)


# --- CSV folder data ----------------------------------------------------------------------


def _image(path, value: int, size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


@pytest.fixture
def csv_folder(tmp_path):
    for i in range(4):
        _image(tmp_path / "img" / f"{i}.png", 10 * i)
    (tmp_path / "train.csv").write_text(
        "path,labels\nimg/0.png,person;bike\nimg/1.png, tree \nimg/2.png,bike;bike\n")
    (tmp_path / "test.csv").write_text(f"img/3.png,car;person\n{tmp_path}/img/0.png,tree\n")
    return tmp_path


def test_csv_records_and_shared_label_names(csv_folder):
    sources = open_multilabel_folder(str(csv_folder), ["train", "test"])
    train, test = sources["train"], sources["test"]
    assert train.label_names == test.label_names == ("bike", "car", "person", "tree")
    assert len(train) == 3 and len(test) == 2
    record = train[0]
    assert record["image"].dtype == np.uint8 and record["image"].shape == (10, 12, 3)
    assert record["image"][0, 0, 0] == 0
    assert record["labels"].tolist() == [1, 0, 1, 0]
    assert train[1]["labels"].tolist() == [0, 0, 0, 1]
    assert train[2]["labels"].tolist() == [1, 0, 0, 0]  # a repeated label counts once
    assert test[0]["labels"].tolist() == [0, 1, 1, 0] and test[0]["image"][0, 0, 0] == 30
    assert test[1]["image"][0, 0, 0] == 0  # absolute paths work too


def test_label_names_from_labels_txt_fix_the_order(csv_folder):
    (csv_folder / "labels.txt").write_text("tree\nperson\nbike\ncar\ndog\n")
    source = MultilabelCsvSource(str(csv_folder / "train.csv"))
    assert source.label_names == ("tree", "person", "bike", "car", "dog")
    assert source[0]["labels"].tolist() == [0, 1, 1, 0, 0]


@pytest.mark.parametrize("body,message", [
    ("img/0.png,bike\n\nimg/1.png,tree\n", r"train\.csv: row 2 is empty"),
    ("img/0.png,bike\n,\n", r"train\.csv: row 2 is empty"),
    ("img/0.png,bike\nimg/1.png,\n", r"train\.csv: row 2 \(img/1\.png\) has no labels"),
    ("img/0.png,bike\nimg/1.png, ; \n", r"train\.csv: row 2 \(img/1\.png\) has no labels"),
    ("path,labels\nimg/0.png,bike\nimg/9.png,tree\n",
     r"train\.csv: row 3: image 'img/9\.png' not found"),
    ("img/0.png,bike\nimg/1.png,kite\n",
     r"train\.csv: row 2: unknown label 'kite'; known labels: bike, car, person, tree"),
    ("img/0.png,bike,tree\n", r"train\.csv: row 1 has 3 fields .*separated by ';', not ','"),
    (",bike\n", r"train\.csv: row 1 has no image path"),
])
def test_each_malformed_csv_gives_its_one_line_error(csv_folder, body, message):
    (csv_folder / "train.csv").write_text(body)
    with pytest.raises(ConfigError, match=message) as error:
        MultilabelCsvSource(str(csv_folder / "train.csv"),
                            label_names=["bike", "car", "person", "tree"])
    assert "\n" not in str(error.value)


def test_a_missing_split_csv_names_the_splits(csv_folder):
    with pytest.raises(ConfigError, match=r"has no validation\.csv \(its splits: test, train\)"):
        open_multilabel_folder(str(csv_folder), ["train", "validation"])


# --- digits verification split ------------------------------------------------------------


def test_digits_split_by_class_for_verification(digits_data_dir):
    sources, _ = open_splits("builtin:digits", {"a": "train", "b": "test"}, digits_data_dir)
    train = ClassSubset(sources["train"], range(7), field="config.verification.train_classes")
    held_out = ClassSubset(sources["test"], (7, 8, 9))
    assert len(train) == 7 * 400 and len(held_out) == 3 * 100
    assert {train[i]["label"] for i in range(0, len(train), 97)} <= set(range(7))
    held_labels = {held_out[i]["label"] for i in range(len(held_out))}
    assert held_labels == {7, 8, 9}
    record = held_out[5]
    np.testing.assert_array_equal(record["image"],
                                  sources["test"][int(held_out.indices[5])]["image"])
    predicate = keep_classes((7, 8, 9))
    assert predicate({"label": 8}) and not predicate({"label": 3})


def test_a_class_subset_of_absent_classes_is_a_config_error(digits_data_dir):
    sources, _ = open_splits("builtin:digits", {"a": "test"}, digits_data_dir)
    with pytest.raises(ConfigError, match=r"config.verification.eval_classes lists classes "
                                          r"\[12\]"):
        ClassSubset(sources["test"], (9, 12), field="config.verification.eval_classes")

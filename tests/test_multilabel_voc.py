"""`tfds:voc/2007` as multi-label data: the TFDS catalog's VOC builder prepares a small local
VOCdevkit tree (as in test_tfds_voc, nothing downloaded), and each record maps to the set of
object classes named in its XML file, multi-hot over the 20 PASCAL classes."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_datasets as tfds
from test_tfds_voc import GFILE_WITHOUT_TF, VOC, VOC_CLASSES, write_voc_trees
from tfds_local import fill_download_cache, prepare_as_told

from vision_jax.data.multilabel import VOC_NUM_CLASSES, multi_hot_record, voc_multilabel_record
from vision_jax.data.sources import open_splits


@pytest.fixture(scope="module")
def voc_multilabel(tmp_path_factory):
    base = tmp_path_factory.mktemp("tfds_voc_multilabel")
    trees, data_dir = base / "voc_archives", base / "tfds"
    images = write_voc_trees(trees / "trainval", trees / "test")
    fill_download_cache("voc", data_dir, {
        "VOCtrainval_06-Nov-2007.tar": trees / "trainval" / "VOCdevkit",
        "VOCtest_06-Nov-2007.tar": trees / "test" / "VOCdevkit"})
    assert tfds.builder_cls("voc").__module__ == "tensorflow_datasets.object_detection.voc"
    prepare_as_told(VOC, data_dir, preamble=GFILE_WITHOUT_TF)
    return data_dir, images


def _expected(objects: list[dict], include_difficult: bool = True) -> list[int]:
    names = {o["name"] for o in objects if include_difficult or not o["difficult"]}
    return [int(name in names) for name in VOC_CLASSES]


def test_voc_records_map_to_the_xml_class_sets(voc_multilabel):
    data_dir, images = voc_multilabel
    splits = {"a": "train", "b": "validation", "c": "test"}
    sources, _ = open_splits(f"tfds:{VOC}", splits, str(data_dir))
    checked, empty, difficult_only = 0, 0, 0
    for source in sources.values():
        for index in range(len(source)):
            record = source[index]
            image_id = np.asarray(record["image/filename"]).item()
            image_id = (image_id.decode() if isinstance(image_id, bytes) else image_id)[:-4]
            objects = images[image_id]["objects"]
            mapped = voc_multilabel_record(record)
            assert mapped["labels"].shape == (VOC_NUM_CLASSES,)
            assert mapped["labels"].tolist() == _expected(objects)
            np.testing.assert_array_equal(mapped["image"], record["image"])
            # The catalog's own `labels` feature holds the same set.
            assert multi_hot_record(record, VOC_NUM_CLASSES)["labels"].tolist() == \
                _expected(objects)
            strict = voc_multilabel_record(record, include_difficult=False)["labels"]
            assert strict.tolist() == _expected(objects, include_difficult=False)
            checked += 1
            empty += not objects
            difficult_only += strict.tolist() != mapped["labels"].tolist()
    assert checked == len(images) == 10
    assert empty == 1 and difficult_only == 1  # preconditions: both edge cases are covered

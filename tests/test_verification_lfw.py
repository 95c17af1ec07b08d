"""`tfds:lfw` for verification on a generated local tree: the TFDS catalog's LFW builder
prepares ``lfw/<Person_Name>/<Person_Name>_NNNN.jpg`` (nothing downloaded, see `tfds_local`),
our `tfds:` source reads it, and `split_identities` gives train and eval people that never
overlap, with integer identities that match the folder names.

Without TensorFlow: the LFW builder lists folders with ``tf.io.gfile.listdir`` / ``isdir``, the
only things it takes from TensorFlow; the preparing process gets ``os.listdir`` and
``os.path.isdir`` for them where TensorFlow is missing (as test_tfds_voc does for VOC's GFile).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from tfds_local import fill_download_cache, prepare_as_told

from vision_jax.data.sources import open_splits
from vision_jax.data.verification import identity_name, split_identities
from vision_jax.errors import ConfigError

PEOPLE = {"Ada_Lovelace": 3, "Alan_Turing": 4, "Grace_Hopper": 2, "Emmy_Noether": 1,
          "Kurt_Goedel": 2, "John_von_Neumann": 3, "Sofia_Kovalevskaya": 2}
GFILE_WITHOUT_TF = """
import importlib.util, os, types
if importlib.util.find_spec("tensorflow") is None:
    from tensorflow_datasets.datasets.lfw import lfw_dataset_builder as lfw
    lfw.tf = types.SimpleNamespace(io=types.SimpleNamespace(gfile=types.SimpleNamespace(
        listdir=os.listdir, isdir=os.path.isdir)))
"""


@pytest.fixture(scope="module")
def lfw(tmp_path_factory):
    base = tmp_path_factory.mktemp("tfds_lfw")
    tree, data_dir = base / "tree" / "lfw", base / "tfds"
    rng = np.random.default_rng(0)
    pixels = {}
    for person, count in PEOPLE.items():
        (tree / person).mkdir(parents=True)
        for k in range(1, count + 1):
            image = rng.integers(0, 255, (250, 250, 3)).astype(np.uint8)
            image[:, :, 0] = 40 * list(PEOPLE).index(person)  # a per-person colour
            path = tree / person / f"{person}_{k:04d}.jpg"
            Image.fromarray(image).save(path, quality=95)
            pixels[(person, k)] = np.asarray(Image.open(path))
    fill_download_cache("lfw", data_dir, {"lfw.tgz": tree})
    prepare_as_told("lfw", data_dir, preamble=GFILE_WITHOUT_TF)
    # Read with TFDS directly: our `tfds:` source casts a scalar "label" to int, which a
    # text label is not (see test_our_tfds_source_reads_text_labels).
    source = tfds.data_source("lfw", split="train", data_dir=str(data_dir))
    return source, data_dir, pixels


def test_lfw_records_are_the_tree(lfw):
    source, _, pixels = lfw
    assert len(source) == sum(PEOPLE.values())
    seen = []
    for index in range(len(source)):
        record = source[index]
        person = identity_name(record["label"])
        matches = [k for (p, k), image in pixels.items()
                   if p == person and np.array_equal(image, record["image"])]
        assert len(matches) == 1, person
        seen.append((person, matches[0]))
    assert sorted(seen) == sorted(pixels)


def test_identities_split_into_disjoint_people(lfw):
    source, _, _ = lfw
    train, evaluation, names = split_identities(source, eval_fraction=0.5, seed=1)
    assert names == sorted(PEOPLE)
    assert len(train) + len(evaluation) == len(source)
    people = {}
    for part, view in (("train", train), ("eval", evaluation)):
        for index in range(len(view)):
            record = view[index]
            label = record["label"]
            assert isinstance(label, int)
            # The integer identity names the person whose folder the image came from.
            original = source[int(view.indices[index])]
            assert names[label] == identity_name(original["label"])
            np.testing.assert_array_equal(record["image"], original["image"])
            people.setdefault(part, set()).add(names[label])
    assert not people["train"] & people["eval"]
    assert len(people["eval"]) == 3  # half of the 6 people with two images or more
    assert all(PEOPLE[p] >= 2 for p in people["eval"])
    assert "Emmy_Noether" in people["train"]  # one image: never an eval identity


def test_too_few_eval_identities_is_a_config_error(lfw):
    source, _, _ = lfw
    with pytest.raises(ConfigError, match=r"config.verification.eval_fraction=0.1 leaves 1 "):
        split_identities(source, eval_fraction=0.1)


def test_our_tfds_source_reads_text_labels(lfw):
    _, data_dir, _ = lfw
    sources, info = open_splits("tfds:lfw", {"config.train_split": "train"}, str(data_dir))
    assert info.split_sizes == {"train": sum(PEOPLE.values())}
    assert identity_name(sources["train"][0]["label"]) in PEOPLE


def test_the_catalog_builder_is_the_installed_one():
    assert tfds.builder_cls("lfw").__module__.startswith("tensorflow_datasets.datasets.lfw")

"""How the two issue-16 tasks are configured: the registered options sections and their
one-line errors, the `by_class:` scheme that holds identities out of training, and the
`multilabel_folder:` scheme over CSV folders."""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest
from PIL import Image

from vision_jax.data.by_class import parse_classes, split_and_classes
from vision_jax.data.sources import DatasetInfo, open_splits
from vision_jax.errors import ConfigError
from vision_jax.tasks import TASKS
from vision_jax.tasks.multilabel import MultilabelOptions, MultilabelTask
from vision_jax.tasks.verification import VerificationOptions, VerificationTask
from vision_jax.training.run_config import parse_config


def _config(name: str, arg: str | None = None):
    return importlib.import_module(f"configs.{name}").get_config(arg)


def test_both_tasks_are_registered_with_their_groups():
    assert {"multilabel", "verification"} <= set(TASKS.names())
    assert TASKS.get("multilabel").group == "multilabel"
    assert TASKS.get("verification").group == "verification"


def test_the_configs_parse_into_their_options():
    run = parse_config(_config("shapes_multilabel"))
    assert isinstance(run.task_options, MultilabelOptions)
    assert run.task_options.choose_thresholds and run.model.num_classes == 3
    run = parse_config(_config("digits_verification"))
    assert run.task_options == VerificationOptions(loss="triplet", margin=0.5)
    assert run.data.train_split == "train@0-6/rot90flip+halves~6r180"
    assert run.data.eval_split == "test@7-9"
    smoke = parse_config(_config("digits_verification", "smoke"))
    assert smoke.data.dataset == "by_class:builtin:digits" and smoke.loop.num_steps == 6


@pytest.mark.parametrize("config_name,field,value,message", [
    ("shapes_multilabel", "multilabel.thresholds", (0.5, 0.5),
     r"config.multilabel.thresholds has 2 values for config.num_classes=3 labels"),
    ("shapes_multilabel", "multilabel.thresholds", 1.5,
     r"config.multilabel.thresholds=1.5 must be one probability in \(0, 1\)"),
    ("shapes_multilabel", "multilabel.pos_weight", (1.0, 2.0),
     r"config.multilabel.pos_weight has 2 entries for config.num_classes=3"),
    ("shapes_multilabel", "multilabel.label_names", ("a",),
     r"config.multilabel.label_names has 1 entries for config.num_classes=3"),
    ("shapes_multilabel", "verification.loss", "triplet",
     r"config.verification.loss is set but config.task='multilabel' does not use it"),
    ("digits_verification", "verification.loss", "hinge",
     r"config.verification.loss='hinge'"),
    ("digits_verification", "verification.validation_fraction", 1.0,
     r"config.verification.validation_fraction=1.0 must be in \(0.0, 1.0\)"),
    ("digits_verification", "num_classes", 1,
     r"config.num_classes=1 is the embedding size of the verification task"),
    # The config sets margin 0.5, which supcon would ignore; triplet ignores a temperature.
    ("digits_verification", "verification.loss", "supcon",
     r"config.verification.margin=0.5 has no effect with loss='supcon'.*set margin to 0"),
    ("digits_verification", "verification.temperature", 0.5,
     r"config.verification.temperature=0.5 has no effect with loss='triplet'"),
])
def test_bad_options_are_one_line_errors(config_name, field, value, message):
    config = _config(config_name)
    group, _, name = field.rpartition(".")
    (config[group] if group else config)[name] = value
    with pytest.raises(ConfigError, match=message) as error:
        parse_config(config)
    assert "\n" not in str(error.value)


def _create(task: str, options, num_classes: int, info: DatasetInfo, dataset: str):
    data = parse_config(_config("shapes_multilabel")).data
    return TASKS.get(task).create(options, num_classes=num_classes, info=info,
                                  data=dataclasses.replace(data, dataset=dataset))


def test_multilabel_label_names_come_from_the_dataset_and_must_match_num_classes():
    info = DatasetInfo("multilabel_folder:x", 4, ("bike", "car", "person", "tree"), None, {})
    task = _create("multilabel", MultilabelOptions(thresholds=(0.2, 0.3, 0.4, 0.5)), 4, info,
                   "multilabel_folder:x")
    assert isinstance(task, MultilabelTask) and task.label_names == list(info.class_names)
    np.testing.assert_allclose(task.thresholds, [0.2, 0.3, 0.4, 0.5])
    with pytest.raises(ConfigError, match=r"config.num_classes=3 but dataset "
                                          r"'multilabel_folder:x' has 4 labels"):
        _create("multilabel", MultilabelOptions(), 3, info, "multilabel_folder:x")


def test_verification_options_reach_the_task():
    info = DatasetInfo("by_class:builtin:digits", 10, None, None, {})
    task = _create("verification", VerificationOptions(loss="contrastive"), 64, info,
                   "by_class:builtin:digits")
    assert isinstance(task, VerificationTask)
    assert task.loss_name == "contrastive" and task.margin == 1.0  # 0 = the loss's default
    task = _create("verification", VerificationOptions(margin=0.5), 64, info, "x")
    assert task.margin == 0.5


# --- by_class: ------------------------------------------------------------------------------


def test_class_lists_and_split_strings():
    assert parse_classes("0-2, 5,7-8", "f") == (0, 1, 2, 5, 7, 8)
    assert split_and_classes("train[:50%]@3", "f") == ("train[:50%]", (3,))
    assert split_and_classes("train+test", "f") == ("train+test", None)
    for text, message in (("train@x", r"f: 'x' is not a list of classes"),
                          ("train@5-2", r"f: range '5-2' is empty"),
                          ("@0-6", r"f='@0-6' names no split before '@'")):
        with pytest.raises(ConfigError, match=message):
            split_and_classes(text, "f")


def test_by_class_holds_classes_out_of_each_split(digits_data_dir):
    splits = {"config.train_split": "train@0-6", "config.eval_split": "test@7-9"}
    sources, info = open_splits("by_class:builtin:digits", splits, digits_data_dir)
    train, held_out = sources["train@0-6"], sources["test@7-9"]
    assert len(train) == 2800 and len(held_out) == 300
    assert info.split_sizes["train@0-6"] == 2800 and info.split_sizes["test@7-9"] == 300
    assert info.num_classes == 10 and info.name == "by_class:builtin:digits"
    assert {held_out[i]["label"] for i in range(len(held_out))} == {7, 8, 9}
    assert {train[i]["label"] for i in range(0, len(train), 7)} == set(range(7))
    whole, _ = open_splits("by_class:builtin:digits", {"s": "test"}, digits_data_dir)
    assert len(whole["test"]) == 1000


@pytest.mark.parametrize("split,message", [
    ("train@0-12", r"config.train_split='train@0-12' lists class 12 but builtin:digits has "
                   r"classes 0-9"),
    ("validation@0-6", r"config.train_split='validation' is not a split"),
])
def test_by_class_errors_name_the_split_field(digits_data_dir, split, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        open_splits("by_class:builtin:digits", {"config.train_split": split}, digits_data_dir)


# --- multilabel_folder: ---------------------------------------------------------------------


def test_multilabel_folder_records_list_label_ids(tmp_path):
    (tmp_path / "img").mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / "img" / f"{i}.png")
    (tmp_path / "train.csv").write_text("path,labels\nimg/0.png,person;bike\nimg/1.png,tree\n")
    (tmp_path / "test.csv").write_text("img/2.png,bike\n")
    splits = {"config.train_split": "train", "config.eval_split": "test"}
    sources, info = open_splits(f"multilabel_folder:{tmp_path}", splits)
    assert info.class_names == ("bike", "person", "tree") and info.num_classes == 3
    assert info.split_sizes == {"test": 1, "train": 2} and info.num_channels == 3
    assert sources["train"][0]["labels"].tolist() == [0, 1]
    assert sources["train"][1]["labels"].tolist() == [2]
    assert sources["test"][0]["image"].shape == (8, 8, 3)
    with pytest.raises(ConfigError, match=r"config.eval_split='val' has no val.csv in .* \(its "
                                          r"splits: test, train\)"):
        open_splits(f"multilabel_folder:{tmp_path}", {"config.eval_split": "val"})
    with pytest.raises(ConfigError, match=r"directory .*nowhere does not exist"):
        open_splits(f"multilabel_folder:{tmp_path}/nowhere", splits)

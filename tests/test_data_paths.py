"""Folder datasets resolve their path in one place: every folder scheme expands ``~``, resolves
a relative path against ``config.data_dir`` and names ``config.dataset`` when the folder is
missing."""

from __future__ import annotations

import os

import pytest

from vision_jax.data.paths import resolve_dataset_dir
from vision_jax.data.sources import open_splits

SCHEMES = ["folder", "segmentation_folder", "coco"]


def test_a_relative_path_resolves_against_data_dir(tmp_path):
    (tmp_path / "base" / "pets").mkdir(parents=True)
    resolved = resolve_dataset_dir("folder", "pets", str(tmp_path / "base"), "images")
    assert resolved == str(tmp_path / "base" / "pets")
    absolute = resolve_dataset_dir("folder", str(tmp_path / "base"), "/elsewhere", "images")
    assert absolute == str(tmp_path / "base")  # an absolute path ignores data_dir


def test_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data").mkdir()
    assert resolve_dataset_dir("coco", "~/data", None, "json") == str(tmp_path / "data")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_folder_scheme_names_the_missing_directory(tmp_path, scheme):
    with pytest.raises(FileNotFoundError) as error:
        open_splits(f"{scheme}:missing", {"config.train_split": "train"}, str(tmp_path))
    message = str(error.value)
    assert message.startswith(f"config.dataset='{scheme}:missing': directory "
                              f"{os.path.join(tmp_path, 'missing')} does not exist; point ")
    assert message.endswith("(relative paths resolve against config.data_dir)")
    assert "\n" not in message

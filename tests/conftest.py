"""Fixtures shared across test files."""

import pytest


@pytest.fixture(scope="session")
def digits_data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A TFDS data dir holding the prepared `builtin:digits` dataset (built once per session)."""
    from vision_jax.data.sources import prepare_builtin

    data_dir = str(tmp_path_factory.mktemp("tfds_data"))
    prepare_builtin("digits", data_dir)
    return data_dir

"""An imported model as a workdir that ``evaluate``, ``predict`` and ``export`` restore.

A workdir is ``config.json`` plus an orbax checkpoint of the train state (step 0); both are
written through the training loop's own experiment builder and `Checkpointer`, so the restored
state has exactly the tree a training run of that config has (optimiser state included).
`workdir_config` is the one place that decides which config fields an import sets.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
from flax import traverse_util

from vision_jax import paths
from vision_jax.weights.convert import DEFAULT_INPUT_SHAPE, WeightsError
from vision_jax.weights.keras_format import keras_model_kwargs, load_keras
from vision_jax.weights.torch_format import load_torch, torch_model_kwargs

SOURCES = ("torch", "keras")
# torchvision's ImageNet models expect inputs scaled to [0, 1] then normalised with these.
TORCHVISION_MEAN, TORCHVISION_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def import_model(source: str, file: str, model_name: str,
                 **model_kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(variables, model_kwargs)``: the imported variables and the full model options
    (the source's architecture options, the inferred ``num_classes``, then ``model_kwargs``)
    to build the matching model with ``vision_jax.models.create(model_name, **options)``."""
    if source == "torch":
        variables = load_torch(file, model_name, **model_kwargs)
        options = torch_model_kwargs(model_name)
    elif source == "keras":
        variables = load_keras(file, model_name, **model_kwargs)
        options = keras_model_kwargs(model_name, file)
    else:
        raise WeightsError(f"unknown weights source {source!r}: --from must be one of "
                           f"{', '.join(SOURCES)}")
    num_classes = int(variables["params"]["classifier"]["bias"].shape[0])
    return variables, {**options, "num_classes": num_classes, **model_kwargs}


def default_input_shape(model_name: str) -> tuple[int, int, int]:
    """The (H, W, C) the model is built for: its ``default_input_shape``, else 224x224x3."""
    from vision_jax import models

    model = models.create(model_name, num_classes=1) if model_name in models.names() else None
    return getattr(model, "default_input_shape", DEFAULT_INPUT_SHAPE)


def default_dataset(num_classes: int) -> str:
    """The dataset an imported model's workdir records when none is named: the built-in
    digits for a 10-class model. Any other head needs a dataset of its size, which only the
    user can name (evaluate and predict read class names and images from it)."""
    if num_classes == 10:
        return "builtin:digits"
    raise WeightsError(
        f"the imported classifier has {num_classes} classes; name the dataset that evaluate "
        f"and predict will use with --dataset (a dataset of {num_classes} classes, e.g. "
        "tfds:imagenet2012 for ImageNet weights, prepared with python -m "
        "vision_jax.data.prepare)")


def workdir_config(source: str, model_name: str, model_kwargs: dict[str, Any],
                   dataset: str, data_dir: str, image_size: int,
                   image_channels: int) -> ml_collections.ConfigDict:
    """The training config an imported model's workdir records (defaults for the rest)."""
    from vision_jax.training.defaults import default_config

    config = default_config()
    options = dict(model_kwargs)
    config.model_name = model_name
    config.num_classes = int(options.pop("num_classes"))
    for key, value in options.items():
        config.model[key] = value
    config.dataset, config.data_dir = dataset, data_dir
    config.image_size, config.image_channels = image_size, image_channels
    if source == "torch":
        config.normalize.mean, config.normalize.std = TORCHVISION_MEAN, TORCHVISION_STD
    return config


def write_workdir(workdir: paths.PathLike, config: ml_collections.ConfigDict,
                  variables: dict[str, Any]) -> None:
    """Writes ``config.json`` and a step-0 checkpoint holding ``variables`` into ``workdir``."""
    from vision_jax.training import loop

    workdir = paths.as_path(workdir)
    exp = loop.build_experiment(config, workdir)
    if exp.checkpointer.latest_step() is not None:
        exp.checkpointer.close()
        raise WeightsError(f"{workdir} already holds a checkpoint; import into a new --workdir")
    state = loop.init_state(exp, jax.random.key(config.seed))
    _check_same_tree(state.variables(), variables, config.model_name)
    state = state.replace(
        params=_placed(variables["params"], state.params),
        batch_stats=_placed(variables.get("batch_stats", {}), state.batch_stats))
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True)
                                         + "\n")
    exp.checkpointer.save(state, {}, force=True)
    exp.checkpointer.close()


def _check_same_tree(fresh: dict[str, Any], imported: dict[str, Any], model_name: str) -> None:
    shapes = {path: tuple(v.shape) for path, v in
              traverse_util.flatten_dict(fresh, sep="/").items()}
    theirs = {path: tuple(v.shape) for path, v in
              traverse_util.flatten_dict(imported, sep="/").items()}
    if shapes != theirs:
        differing = sorted(set(shapes.items()) ^ set(theirs.items()))[:2]
        raise WeightsError(f"the imported {model_name} does not fit the configured input "
                           f"(--image_size / --image_channels): {differing}")


def _placed(tree: Any, like: Any) -> Any:
    # Each imported array goes where the fresh one lives (its sharding and dtype).
    return jax.tree.map(lambda new, old: jax.device_put(new.astype(old.dtype), old.sharding),
                        tree, like)

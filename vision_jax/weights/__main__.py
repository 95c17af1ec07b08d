"""Turn a Keras or torchvision weights file into a workdir.

    python -m vision_jax.weights import --from keras --file mnist.keras --model seed_cnn \
        --workdir runs/mnist_keras [--dataset builtin:digits] [--image_size 28]
    python -m vision_jax.evaluate --workdir runs/mnist_keras

The workdir (``config.json`` + a step-0 orbax checkpoint) is what a training run leaves, so
``evaluate``, ``predict`` and ``export`` restore it. ``--num_classes`` defaults to the file's
classifier; the model's architecture options (ResNet v1 for Keras, the adaptive pool of
torchvision's VGGs, batch-norm epsilon) are set from the source. torchvision models get its
ImageNet input normalisation in the config.
"""

from __future__ import annotations

from absl import app, flags

COMMANDS = ("import",)

_FROM = flags.DEFINE_enum("from", None, ["torch", "keras"], "The format of --file.")
_FILE = flags.DEFINE_string("file", None, "A .pth/.pt/.safetensors state dict or a "
                            ".keras/.h5 Keras file.")
_MODEL = flags.DEFINE_string("model", None, "The vision_jax model name (resnet50, vgg16, ...).")
_WORKDIR = flags.DEFINE_string("workdir", None, "The new workdir to write.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", None, "Default: the file's classifier width.")
_DATASET = flags.DEFINE_string("dataset", None,
                               "The dataset evaluate/predict will use (config.dataset), with "
                               "as many classes as the model. Default: builtin:digits for a "
                               "10-class model; required otherwise.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "config.data_dir.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None,
                                   "Default: the model's input size (224; seed_cnn 28).")
_IMAGE_CHANNELS = flags.DEFINE_integer("image_channels", None,
                                       "Default: the model's input channels (3; seed_cnn 1).")
flags.mark_flags_as_required(["from", "file", "model", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"usage: python -m vision_jax.weights {{{','.join(COMMANDS)}}} "
                             "--from torch|keras --file F --model NAME --workdir W")
    from vision_jax.cli import start_process

    start_process()
    from vision_jax.cli import user_errors_exit
    from vision_jax.weights import workdir
    from vision_jax.weights.convert import config_errors_exit

    with user_errors_exit(), config_errors_exit():
        overrides = {} if _NUM_CLASSES.value is None else {"num_classes": _NUM_CLASSES.value}
        variables, model_kwargs = workdir.import_model(_FROM.value, _FILE.value, _MODEL.value,
                                                       **overrides)
        height, _, channels = workdir.default_input_shape(_MODEL.value)
        config = workdir.workdir_config(
            _FROM.value, _MODEL.value, model_kwargs,
            _DATASET.value or workdir.default_dataset(model_kwargs["num_classes"]),
            _DATA_DIR.value,
            _IMAGE_SIZE.value or height, _IMAGE_CHANNELS.value or channels)
        workdir.write_workdir(_WORKDIR.value, config, variables)
    print(f"imported {_FILE.value} as {_MODEL.value} into {_WORKDIR.value}")


if __name__ == "__main__":
    app.run(main)

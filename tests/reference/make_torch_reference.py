"""Writes the torchvision parity references ``tests/reference/torch_<model>.npz``.

    pip install -e '.[peer]'   # torch and torchvision, pinned
    python tests/reference/make_torch_reference.py [resnet18 ...]

Needs torch and torchvision (the `peer` extra; the CUDA wheels are GBs, so torch is not a
test dependency). For each model it builds torchvision's architecture with seeded weights
(`torch_seeded`, NumPy only), runs the seeded batch in eval mode and stores the state dict's
tensor names and shapes and the logits: a few KB that let the CI test regenerate the same
weights without torch, import them with ``load_torch`` and compare.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_seeded  # noqa: E402

MODELS = ("resnet18", "resnet50", "vgg16", "vgg16_bn")


def reference(model_name: str) -> dict[str, np.ndarray]:
    model = getattr(torchvision.models, model_name)(weights=None).eval()
    template = model.state_dict()
    names = list(template)
    shapes = [tuple(tensor.shape) for tensor in template.values()]
    state = torch_seeded.seeded_state_dict(names, shapes)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    with torch.no_grad():
        logits = model(torch.from_numpy(torch_seeded.seeded_images())).numpy()
    return {"names": np.array(names), "shapes": np.array(json.dumps(shapes)),
            "logits": logits.astype(np.float32),
            "versions": np.array(f"torch {torch.__version__}, torchvision "
                                 f"{torchvision.__version__}")}


def main(names: list[str]) -> None:
    torch.manual_seed(0)
    for model_name in names or MODELS:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            f"torch_{model_name}.npz")
        np.savez_compressed(path, **reference(model_name))
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Looking inside a trained network: layer outputs, filter visualisation, Deep Dream,
Grad-CAM and saliency, for any registered model, as functions and as a command:

    python -m vision_jax.explain {activations,filters,dream,gradcam,saliency} --workdir W ...

`layers` reads any layer by the names `vision_jax.summary` prints; `gradcam`, `saliency` and
`ascent` compute the maps; `workdir` restores a run and prepares images; `verbs` writes PNGs
and a JSON of numbers; `__main__` parses the command line.
"""

from vision_jax.explain.gradcam import explain_gradcam
from vision_jax.explain.layers import (
    call_with_layer,
    last_spatial_layer,
    layer_output,
    layer_shapes,
    read_layers,
    spatial_layers,
)

__all__ = [
    "call_with_layer",
    "explain_gradcam",
    "last_spatial_layer",
    "layer_output",
    "layer_shapes",
    "read_layers",
    "spatial_layers",
]

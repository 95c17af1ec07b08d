"""What `vision_jax.predict` writes beside the task's own `predictions.json`: a Parquet table
of probabilities or of pooled features (for tools outside the toolkit), Grad-CAM overlays, and
the short table it prints.

The task's prediction records (`Task.write_predictions`) are the contract read here: a
single-label record lists its ``top`` classes, a multi-label record maps every label to its
``probabilities`` and lists the ``labels`` at or above the run's thresholds. The full
probability vector of a single-label model is its logits' softmax in float32, computed as
the classification task computes it, so the table's values equal the JSON's exactly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from vision_jax.errors import ConfigError


def probability_table(records: list[dict], logits: Any, class_names: Sequence[str],
                      task_name: str):
    """A `pyarrow.Table`, one row per image: ``image``, ``label`` (the top class, or the
    labels above threshold joined by ";"), ``top_k_labels``, ``top_k_indices``,
    ``top_k_probabilities`` (single-label) or ``labels`` (multi-label), and
    ``probabilities`` (float32, one per class, in ``class_names`` order: the schema's
    ``class_names`` metadata)."""
    import jax
    import jax.numpy as jnp
    import pyarrow as pa

    if records and "top" in records[0]:
        probs = np.asarray(jax.nn.softmax(jnp.asarray(logits, jnp.float32), -1))
        columns = {
            "image": [r["image"] for r in records],
            "label": [r["top"][0]["class"] for r in records],
            "top_k_labels": pa.array([[t["class"] for t in r["top"]] for r in records],
                                     pa.list_(pa.string())),
            "top_k_indices": pa.array([[t["index"] for t in r["top"]] for r in records],
                                      pa.list_(pa.int32())),
            "top_k_probabilities": pa.array([[t["probability"] for t in r["top"]]
                                             for r in records], pa.list_(pa.float32())),
        }
    elif records and "probabilities" in records[0] and "labels" in records[0]:
        probs = np.asarray([[r["probabilities"][name] for name in class_names]
                            for r in records], np.float32)
        columns = {
            "image": [r["image"] for r in records],
            "label": [";".join(r["labels"]) for r in records],
            "labels": pa.array([r["labels"] for r in records], pa.list_(pa.string())),
        }
    else:
        raise ConfigError(f"--output: a Parquet table holds per-class probabilities, which "
                          f"this run's task (config.task={task_name!r}) does not predict; "
                          "drop --output (predictions.json in --out has its results)")
    columns["probabilities"] = pa.array(list(probs.astype(np.float32)),
                                        pa.list_(pa.float32()))
    return pa.table(columns).replace_schema_metadata(
        {"class_names": json.dumps(list(class_names))})


def feature_table(names: list[str], features: np.ndarray, layer: str, layer_shape):
    """A `pyarrow.Table` of ``image`` and ``features`` (float32, the layer's output averaged
    over its spatial positions); the schema's metadata names the layer and its shape."""
    import pyarrow as pa

    return pa.table({
        "image": names,
        "features": pa.array(list(np.asarray(features, np.float32)), pa.list_(pa.float32())),
    }).replace_schema_metadata({"layer": layer, "layer_shape": json.dumps(list(layer_shape)),
                                "pooling": "global average"})


def write_parquet(table, path: str) -> str:
    """``table`` to ``path`` (its folder created); a path that is not ``.parquet`` is an error
    naming the flag."""
    import pyarrow.parquet as pq

    if not path.endswith(".parquet"):
        raise ConfigError(f"--output {path!r} must end in .parquet (the one format it writes)")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    pq.write_table(table, path)
    return path


def write_gradcam(names: list[str], shown: np.ndarray, heatmaps: np.ndarray, classes,
                  class_names: Sequence[str], out_dir: str) -> list[dict]:
    """``<stem>_gradcam.png`` per image (the heatmap over the image as the model saw it) and
    `gradcam.json` with the class each map explains; returns that JSON's records."""
    from PIL import Image

    from vision_jax.viz.cam import overlay_heatmap

    records = []
    for name, image, heatmap, cls in zip(names, shown, heatmaps, classes, strict=True):
        path = os.path.join(out_dir, f"{os.path.splitext(name)[0]}_gradcam.png")
        Image.fromarray(overlay_heatmap(image, heatmap)).save(path)
        index = int(cls)
        records.append({"image": name, "gradcam": path, "class_index": index,
                        "class": class_names[index] if index < len(class_names) else str(index)})
    with open(os.path.join(out_dir, "gradcam.json"), "w") as f:
        json.dump(records, f, indent=1)
    return records


def describe(record: dict) -> str:
    """One record's prediction in a few words, for the screen table."""
    if "top" in record:
        return ", ".join(f"{t['class']} {t['probability']:.3f}" for t in record["top"][:3])
    if "labels" in record:
        return ", ".join(record["labels"]) or "(no label above its threshold)"
    if "detections" in record:
        found = record["detections"]
        kinds = sorted({d["class"] for d in found})
        return f"{len(found)} object(s)" + (f": {', '.join(kinds)}" if kinds else "")
    if "class_fractions" in record:
        parts = sorted(record["class_fractions"].items(), key=lambda kv: -kv[1])[:3]
        return ", ".join(f"{name} {fraction:.0%}" for name, fraction in parts)
    if "nearest" in record:
        return f"nearest {record['nearest']} (cosine {record['similarity']:.3f})"
    rest = {k: v for k, v in record.items() if k != "image"}
    return json.dumps(rest)[:80]


def screen_table(records: list[dict], rows: int) -> str:
    """The first ``rows`` predictions as ``image  prediction`` lines, and how many more."""
    shown = records[:max(rows, 0)]
    if not shown:
        return ""
    width = min(max(len(r["image"]) for r in shown), 48)
    lines = [f"{'image'.ljust(width)}  prediction"]
    lines += [f"{r['image'].ljust(width)}  {describe(r)}" for r in shown]
    if len(records) > len(shown):
        lines.append(f"... and {len(records) - len(shown)} more")
    return "\n".join(lines)

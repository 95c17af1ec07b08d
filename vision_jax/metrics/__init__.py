"""Evaluation metrics: confusion matrix and classification report, segmentation IoU,
COCO-style detection mAP.

Confusion matrices accumulate in JAX inside jitted eval steps; the reports and COCO
evaluation run in NumPy on the host.
"""

from vision_jax.metrics.classification import (
    classification_report,
    confusion_matrix,
    confusion_matrix_update,
    format_report,
)
from vision_jax.metrics.detection import DetectionEvaluator, evaluate_detections
from vision_jax.metrics.segmentation import (
    mean_iou,
    per_class_accuracy,
    per_class_iou,
    pixel_accuracy,
    segmentation_confusion_update,
    segmentation_metrics,
)

__all__ = [
    "DetectionEvaluator",
    "classification_report",
    "confusion_matrix",
    "confusion_matrix_update",
    "evaluate_detections",
    "format_report",
    "mean_iou",
    "per_class_accuracy",
    "per_class_iou",
    "pixel_accuracy",
    "segmentation_confusion_update",
    "segmentation_metrics",
]

"""Evaluation of fashion parsing: thesis 001's multi-label and segmentation metrics and combined scores,
the iMaterialist Kaggle score, pixel-level metrics (thesis 003), COCO AP via pycocotools, and a report
that aggregates them over a test set.

- :mod:`fashion.evaluation.metrics`: pure numpy metric functions.
- :mod:`fashion.evaluation.coco_eval`: the pycocotools bridge (box and mask AP, per-class AP).
- :mod:`fashion.evaluation.report`: ``EvaluationReport``, ``evaluate_predictions``, ``format_table``,
  ``write_json``.
- :mod:`fashion.evaluation.attributes`: per-attribute AP and F1 of matched instances, Fashionpedia's AP at
  IoU and attribute-F1 thresholds.
- :mod:`fashion.evaluation.results_file`: COCO/Fashionpedia results files of any model (``--results``).
- :mod:`fashion.evaluation.visual`: the figures and ``index.html`` of ``--report``.
"""

from fashion.evaluation.coco_eval import coco_evaluate
from fashion.evaluation.report import EvaluationReport, evaluate_predictions, format_table, write_json

__all__ = ["EvaluationReport", "coco_evaluate", "evaluate_predictions", "format_table", "write_json"]

"""ROC-AUC (macro, micro, per label) and per-label F1-maximising thresholds, via scikit-learn."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import precision_recall_curve

from common.metrics import auc, macro, per_label_auc


def roc_auc_report(labels: np.ndarray, probs: np.ndarray, names: list[str]) -> dict:
    """Per-label ROC-AUC; a label with only one class present gets NaN and is left out of macro."""
    per_label = per_label_auc(labels, probs, names)
    return {
        "roc_auc_macro": _nan(macro(per_label)),
        "roc_auc_micro": _nan(auc(labels.ravel(), probs.ravel())),
        "roc_auc": {name: _nan(a) for name, a in per_label.items()},
    }


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def best_f1_thresholds(labels: np.ndarray, probs: np.ndarray, names: list[str]) -> dict:
    """For each label, the probability cut-off with the highest F1 on these rows; a label with no
    positive row keeps 0.5, since no cut-off can be chosen from the data."""
    result = {}
    for j, name in enumerate(names):
        positives = int(labels[:, j].sum())
        if not positives:
            result[name] = {"threshold": 0.5, "f1": math.nan, "positives": 0}
            continue
        precision, recall, cut = precision_recall_curve(labels[:, j], probs[:, j])
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        best = int(np.argmax(f1[:-1]))  # the last point has no threshold
        result[name] = {
            "threshold": float(cut[best]),
            "f1": float(f1[best]),
            "positives": positives,
        }
    return result

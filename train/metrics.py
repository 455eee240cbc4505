"""ROC-AUC (macro, micro, per label) and per-label F1-maximising thresholds, via scikit-learn."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score


def roc_auc_report(labels: np.ndarray, probs: np.ndarray, names: list[str]) -> dict:
    """Per-label ROC-AUC; a label with only one class present gets NaN and is left out of macro."""
    per_label = {}
    for j, name in enumerate(names):
        column = labels[:, j]
        both = 0 < column.sum() < len(column)
        per_label[name] = float(roc_auc_score(column, probs[:, j])) if both else math.nan
    scored = [v for v in per_label.values() if not math.isnan(v)]
    flat_labels = labels.ravel()
    micro = (
        float(roc_auc_score(flat_labels, probs.ravel()))
        if 0 < flat_labels.sum() < len(flat_labels)
        else math.nan
    )
    return {
        "roc_auc_macro": float(np.mean(scored)) if scored else math.nan,
        "roc_auc_micro": micro,
        "roc_auc": per_label,
    }


def best_f1_thresholds(labels: np.ndarray, probs: np.ndarray, names: list[str]) -> dict:
    """For each label, the probability cut-off with the highest F1 on these rows.

    A label with no positive row keeps 0.5, since no cut-off can be chosen from the data.
    """
    result = {}
    for j, name in enumerate(names):
        if labels[:, j].sum() == 0:
            result[name] = {"threshold": 0.5, "f1": math.nan, "positives": 0}
            continue
        precision, recall, cut = precision_recall_curve(labels[:, j], probs[:, j])
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        best = int(np.argmax(f1[:-1]))  # the last point has no threshold
        result[name] = {
            "threshold": float(cut[best]),
            "f1": float(f1[best]),
            "positives": int(labels[:, j].sum()),
        }
    return result

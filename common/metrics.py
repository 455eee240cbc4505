"""ROC-AUC per label and its macro mean, as every stage reports them, training's report (macro,
micro, per label) and its per-label F1-maximising thresholds (scikit-learn)."""

from __future__ import annotations

import math

import numpy as np


def auc(truth: np.ndarray, probs: np.ndarray) -> float | None:
    """ROC-AUC of one 0/1 column; None where it holds only one class."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, probs)) if 0 < truth.sum() < len(truth) else None


def per_label_auc(truth: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict:
    """ROC-AUC per label; None where the rows hold only one class of that label."""
    return {name: auc(truth[:, j], probs[:, j]) for j, name in enumerate(labels)}


def macro(aucs: dict) -> float | None:
    """Mean ROC-AUC over the labels that have one; None when none has."""
    scored = [a for a in aucs.values() if a is not None]
    return float(np.mean(scored)) if scored else None


def macro_auc(truth: np.ndarray, probs: np.ndarray) -> float | None:
    """Macro ROC-AUC over the label columns that hold both classes."""
    return macro(per_label_auc(truth, probs, [str(j) for j in range(truth.shape[1])]))


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
    from sklearn.metrics import precision_recall_curve

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

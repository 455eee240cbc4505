"""ROC-AUC per label and its macro mean, as every stage reports them (scikit-learn)."""

from __future__ import annotations

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

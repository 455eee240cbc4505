"""ROC-AUC per label and its macro mean, as every stage reports them, training's report (macro,
micro, per label) and its per-label F1-maximising thresholds (scikit-learn); and the one
finite-and-close rule of export parity, the scorer and the benchmarks: NaN or inf anywhere fails,
then the gap is measured, so a variant that outputs NaN can never be recorded as "max abs diff 0"
(``max(worst, nan)`` is ``worst`` in Python)."""

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


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits, computed in float64 so large logits do not overflow to NaN."""
    with np.errstate(over="ignore"):  # exp(1000) is inf, and 1 / (1 + inf) is the right 0.0
        return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def first_non_finite_row(values: np.ndarray) -> int | None:
    """Index of the first row holding NaN or inf, or None when every value is finite."""
    values = np.asarray(values)
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1) if values.size else []
    rows = np.flatnonzero(bad)
    return int(rows[0]) if len(rows) else None


def max_abs_diff(reference: np.ndarray, candidate: np.ndarray) -> float:
    """The largest absolute difference; inf when either side holds NaN or inf anywhere."""
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.shape != candidate.shape:
        raise ValueError(f"shapes differ: {reference.shape} and {candidate.shape}")
    if not (np.isfinite(reference).all() and np.isfinite(candidate).all()):
        return float("inf")
    return float(np.abs(reference.astype(np.float64) - candidate).max()) if reference.size else 0.0


def agreement(reference: np.ndarray, candidate: np.ndarray, thresholds=None) -> dict:
    """How closely `candidate` probabilities follow `reference` (rows x labels): the largest and
    99th-percentile absolute difference (both inf when either side is not finite) and, with
    per-label `thresholds`, the share of rows whose flag (probability >= threshold, as the scorer
    flags) agrees, per label and at worst."""
    gap = max_abs_diff(reference, candidate)
    finite = np.isfinite(gap)
    diff = np.abs(np.asarray(reference, np.float64) - candidate) if finite else None
    figures = {
        "rows": len(reference),
        "max_abs_diff": gap,
        "p99_abs_diff": float(np.quantile(diff, 0.99)) if finite and diff.size else gap,
    }
    if thresholds is not None and finite:
        ref_flags = reference >= np.asarray(thresholds)
        new_flags = candidate >= np.asarray(thresholds)
        per_label = (ref_flags == new_flags).mean(axis=0)
        figures["flag_agreement"] = [round(float(a), 6) for a in per_label]
        figures["flag_agreement_min"] = float(per_label.min())
        figures["rows_with_a_flag_change"] = int((ref_flags != new_flags).any(axis=1).sum())
    return figures

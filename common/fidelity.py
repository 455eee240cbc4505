"""The one finite-and-close rule of export parity, the scorer and the benchmarks: NaN or inf
anywhere fails, then the gap is measured, so a variant that outputs NaN can never be recorded as
"max abs diff 0" (``max(worst, nan)`` is ``worst`` in Python)."""

from __future__ import annotations

import numpy as np


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
